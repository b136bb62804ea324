"""Backfill's own Prometheus metrics: the counters and histograms that processes increment.

Every app may import this module (it is in `lib`, below them all) and count what it does. In
production each host runs its web and worker processes with one `PROMETHEUS_MULTIPROC_DIR`
(prometheus-client's multiprocess mode): every process writes its samples to files there, and
the host's `/metrics` adds them up, so a counter incremented in a Celery pool process is
scraped through the web process next to it. Figures read from the database or Redis at scrape
time (instances by state, capacity, queue depth) are collectors in portal.runtime.metrics,
not here.

Callers count after the transaction that did the work commits (`transaction.on_commit`), so
a rolled-back launch is not counted. No Django here.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LAUNCHES = Counter(
    "backfill_instance_launches", "Instances launched (accepted by the portal).", ["region"]
)
FAILURES = Counter(
    "backfill_instance_failures",
    "Instances that ended failed (the backend could not make or keep them).",
    ["region"],
)
RECLAIMS = Counter(
    "backfill_instance_reclaims",
    "Preemptible instances interrupted because the operator reclaimed their GPUs.",
    ["region"],
)
RECLAIM_NOTICES = Counter(
    "backfill_instance_reclaim_notices", "Reclaim notices passed on to customers.", ["region"]
)
DRIFT_FOUND = Counter(
    "backfill_reconciliation_drift_found",
    "Differences between the portal and the backend found by reconciliation.",
    ["kind"],
)
DRIFT_REPAIRED = Counter(
    "backfill_reconciliation_drift_repaired",
    "Differences between the portal and the backend that reconciliation repaired.",
    ["kind"],
)
TASK_RUNTIME = Histogram(
    "backfill_task_runtime_seconds",
    "Time a Celery task ran, by queue and task.",
    ["queue", "task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
TASK_WAIT = Histogram(
    "backfill_task_wait_seconds",
    "Time a Celery task waited in its queue after it was due (published, or its ETA).",
    ["queue"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
TASKS = Counter(
    "backfill_tasks",
    "Celery tasks finished, by queue, task and outcome.",
    ["queue", "task", "outcome"],
)
WEBHOOK_DELIVERIES = Counter(
    "backfill_webhook_deliveries", "Webhook attempts that the receiver accepted (2xx)."
)
WEBHOOK_FAILURES = Counter(
    "backfill_webhook_failures",
    "Webhook attempts that failed; final=true when the delivery was given up.",
    ["final"],
)
EMAILS_QUEUED = Counter(
    "backfill_emails_queued", "E-mails put in the outbox to be sent (notify()), by kind.", ["kind"]
)
EMAILS_SENT = Counter(
    "backfill_emails_sent", "Messages the outgoing mail server accepted (one per recipient)."
)
EMAILS_FAILED = Counter(
    "backfill_emails_failed",
    "Messages the outgoing mail server refused or could not be reached for (retried later).",
)


def count_transition(*, region: str, to_state: str) -> None:
    """An instance moved to `to_state` (call it once the transition committed)."""
    counter = {"failed": FAILURES, "interrupted": RECLAIMS}.get(to_state)
    if counter is not None:
        counter.labels(region=region).inc()


def count_reconciliation(report: dict[str, int]) -> None:
    """One reconciliation run's report (portal.instances.sync.ReconcileReport.as_dict())."""
    for kind, number in report.items():
        if kind == "machines" or not number:
            continue
        DRIFT_FOUND.labels(kind=kind).inc(number)
        if kind != "errors":
            DRIFT_REPAIRED.labels(kind=kind).inc(number)
