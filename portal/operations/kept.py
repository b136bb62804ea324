"""Parts of the operator overview kept between views, each under a version that every write
affecting it replaces (portal/operations/receivers.py says which writes), so that an operator
sees a change at the next view.

- INSTANCES: the live instances' GPUs per place and the failures of the last 24 hours
  (instances launched, moved between states, deleted; a cluster made; a region, type, GPU
  model or organization renamed);
- RESERVATIONS: the reservations in force this month (made, changed, cancelled);
- REQUESTS: the open quota requests, the reservation requests waiting, the suspensions in
  force, last month's invoices, the GPU models' and organizations' names.

What moves with the clock (the age of a request, a failure leaving the 24 hours, reservations
starting and ending, revenue) is worked out from the kept rows at each view, or not kept.

A version is replaced twice, as `portal.billing.usage.usage_changed` does: at once, for what
the writer reads later in its own transaction, and on commit, because a reader may meanwhile
have kept the rows as they were before the commit under the version of then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.core.cache import cache

from portal.web.versions import retire, tokens

INSTANCES = "instances"
REQUESTS = "requests"
RESERVATIONS = "reservations"
PARTS = (INSTANCES, REQUESTS, RESERVATIONS)
# The capacity history's sums (portal/operations/history.py), replaced by each capacity report;
# not one of the parts that every rename replaces.
HISTORY = "history"

KEPT_FORMAT = 2  # in the keys: a release that changes a kept part's shape never reads old ones
# A version replaced by writes needs no expiry; this only bounds what an idle portal keeps.
KEPT_TTL = 3600

T = TypeVar("T")


def _version_key(part: str) -> str:
    return f"operations:kept-version:{part}"


def versions(*parts: str) -> dict[str, str]:
    """The current version of each part (one read of the cache for all)."""
    found = tokens(_version_key(part) for part in parts)
    return {part: found[_version_key(part)] for part in parts}


def changed(*parts: str) -> None:
    """Something the parts are made of was written: what is kept of them is not read again."""
    retire(_version_key(part) for part in parts or PARTS)


def kept_key(key: str) -> str:
    """The cache key of what `kept` keeps under `key`."""
    return f"operations:kept{KEPT_FORMAT}:{key}"


def read(keys: Iterable[str]) -> dict[str, Any]:
    """The values kept under `keys` (cache keys), in one round trip: those found."""
    return cache.get_many(list(keys))


def kept(key: str, compute: Callable[[], T], found: dict[str, Any] | None = None) -> T:
    """The value kept under `key` (which names the versions it depends on), or computed and
    kept. `found`: what `read` found of the view's keys, `kept_key(key)` among them."""
    full = kept_key(key)
    value = cache.get(full) if found is None else found.get(full)
    if value is None:
        value = compute()
        cache.set(full, value, timeout=KEPT_TTL)
    return value
