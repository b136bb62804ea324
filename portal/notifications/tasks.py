"""Celery tasks of the outbox: send one row (enqueued on commit), and the periodic sweep."""

from __future__ import annotations

from celery import shared_task

from portal.notifications import delivery


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def notification_send(self, notification_id: int) -> str:
    wait = 0 if self.request.is_eager else delivery.seconds_until_due(notification_id)
    if wait > 0:  # a batched e-mail waits for the rest of its batch (notify(wait=...))
        raise self.retry(countdown=wait)
    outcome = delivery.notification_deliver(notification_id)
    if outcome == "retry":
        attempts = self.request.retries + 1
        raise self.retry(countdown=delivery.retry_delay(attempts).total_seconds())
    return outcome


@shared_task(acks_late=True)
def notifications_sweep() -> int:
    """Every few seconds: send what is due and held by nobody (the broker lost its message, or
    a retry's countdown outlived a worker). Sending twice is impossible: each row is claimed."""
    due = delivery.notifications_due()
    for notification_id in due:
        delivery.notification_deliver(notification_id)
    return len(due)
