"""What a log line inherits from the request that started the work: the request id, the
organization and the user, bound in `structlog.contextvars` (portal.runtime.middleware in a
request, portal.runtime.celery_hooks in the tasks it enqueued).

Work that one task does for several requests (the single launches provisioned together) keeps
each one's context with its row (`captured()` when the request makes it) and writes that row's
lines inside `bound(context)`, so each line carries the request that asked for it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import structlog

# What a task, or a row's later work, inherits from the request that started it.
INHERITED = ("request_id", "org", "user_id", "api_prefix")


def captured() -> dict[str, Any]:
    """The inherited part of the log context bound now."""
    bound = structlog.contextvars.get_contextvars()
    return {key: bound[key] for key in INHERITED if bound.get(key) is not None}


@contextmanager
def bound(context: Mapping[str, Any] | None) -> Iterator[None]:
    """Lines written inside carry `context` instead of the inherited part bound now; with no
    context (a row made outside a request), the lines carry what is bound now."""
    if not context:
        yield
        return
    kept = {key: context[key] for key in INHERITED if context.get(key) is not None}
    current = structlog.contextvars.get_contextvars()
    dropped = [key for key in INHERITED if key in current and key not in kept]
    structlog.contextvars.unbind_contextvars(*dropped)
    try:
        with structlog.contextvars.bound_contextvars(**kept):
            yield
    finally:
        structlog.contextvars.bind_contextvars(**{key: current[key] for key in dropped})
