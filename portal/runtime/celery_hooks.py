"""Celery signals: the request's log context travels with the tasks it enqueues, and every task
run is measured (runtime and wait per queue, outcome).

Publishing (in a web process, or in a task that enqueues another): the message gets a
`backfill_context` header with what is bound to the log context now (request id, organization,
user) and a `backfill_sent_at` time. Running (in the worker's pool process): the context is bound
again, with the task's name and id, so every line the task writes, the backend calls included,
carries the request id of the click that started it. Tasks run eagerly (tests' `apply()`)
inside the caller are left alone: they share the caller's context.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from typing import Any

import structlog
from celery.signals import before_task_publish, task_postrun, task_prerun

from portal.lib import metrics
from portal.lib.logcontext import INHERITED, captured

CONTEXT_HEADER = "backfill_context"
SENT_AT_HEADER = "backfill_sent_at"

_started: dict[str, tuple[float, str]] = {}


@before_task_publish.connect(dispatch_uid="backfill-log-context-publish")
def add_log_context(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    if headers is None:
        return
    context = captured()
    if context:
        headers[CONTEXT_HEADER] = context
    headers[SENT_AT_HEADER] = time.time()


def _header(request: Any, name: str) -> Any:
    value = getattr(request, name, None)
    if value is None and isinstance(getattr(request, "headers", None), dict):
        value = request.headers.get(name)
    return value


def _queue(request: Any) -> str:
    info = getattr(request, "delivery_info", None) or {}
    return str(info.get("routing_key") or info.get("exchange") or "default")


@task_prerun.connect(dispatch_uid="backfill-log-context-run")
def bind_log_context(task_id: str = "", task: Any = None, **kwargs: Any) -> None:
    if task is None or getattr(task.request, "is_eager", False):
        return
    request = task.request
    structlog.contextvars.clear_contextvars()
    context = _header(request, CONTEXT_HEADER) or {}
    if isinstance(context, dict):
        structlog.contextvars.bind_contextvars(
            **{k: v for k, v in context.items() if k in INHERITED}
        )
    structlog.contextvars.bind_contextvars(task=task.name, task_id=task_id)
    queue = _queue(request)
    now = time.time()
    sent_at = _header(request, SENT_AT_HEADER)
    if isinstance(sent_at, int | float):
        due = sent_at
        eta = getattr(request, "eta", None)
        if eta:
            with contextlib.suppress(ValueError):
                due = max(due, datetime.fromisoformat(str(eta)).timestamp())
        metrics.TASK_WAIT.labels(queue=queue).observe(max(0.0, now - due))
    _started[task_id] = (time.monotonic(), queue)


@task_postrun.connect(dispatch_uid="backfill-task-metrics")
def measure_task(task_id: str = "", task: Any = None, state: str | None = None, **kwargs: Any):
    started = _started.pop(task_id, None)
    if task is None or started is None:
        return
    began, queue = started
    metrics.TASK_RUNTIME.labels(queue=queue, task=task.name).observe(time.monotonic() - began)
    metrics.TASKS.labels(queue=queue, task=task.name, outcome=(state or "unknown").lower()).inc()
    # The context stays bound: Celery writes the "succeeded" line after this signal. The next
    # task's prerun clears it.
