"""Version tokens in the cache: what is kept under a token is never read again once a write
replaces the token (billing's usage and page, the operator overview's parts).

A token is replaced twice (`retire`): at once, for what runs later in the writer's own
transaction, and on commit, because a reader may meanwhile have kept the rows as they were
before the commit under the token of then.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.core.cache import cache
from django.db import transaction


def tokens(keys: Iterable[str]) -> dict[str, str]:
    """The current token under each key, in one read of the cache (a missing one is added).
    If the cache keeps nothing, a token of our own means nothing is reused."""
    keys = list(keys)
    found = cache.get_many(keys)
    missing = [key for key in keys if key not in found]
    for key in missing:
        cache.add(key, uuid.uuid4().hex, timeout=None)
    if missing:  # another reader may have added first: take the one kept
        found.update(cache.get_many(missing))
    return {key: found.get(key) or uuid.uuid4().hex for key in keys}


def retire(keys: Iterable[str]) -> None:
    """Replace the tokens under `keys`: at once and again on commit."""
    keys = list(keys)

    def replace() -> None:
        if len(keys) == 1:  # one SET: set_many is a MULTI/EXEC pipeline, twice the client's work
            cache.set(keys[0], uuid.uuid4().hex, None)
        else:
            cache.set_many({key: uuid.uuid4().hex for key in keys}, None)

    replace()
    transaction.on_commit(replace)
