"""Celery tasks of reserved capacity: ids in, one sync call or service, retries."""

from __future__ import annotations

from celery import shared_task

from portal.provisioning import TransientError
from portal.reservations import reminders, sync


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(TransientError,),
    retry_backoff=True,
    max_retries=8,
)
def reservation_hold(reservation_id: int) -> bool:
    return sync.reservation_hold(reservation_id)


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(TransientError,),
    retry_backoff=True,
    max_retries=8,
)
def reservation_release(reservation_id: int) -> bool:
    return sync.reservation_release(reservation_id)


@shared_task(acks_late=True)
def reservation_reminders() -> int:
    """Daily: "starting in 7 days" and "ending in 7 days", once per reservation."""
    return reminders.reservation_reminders_send()


@shared_task(acks_late=True)
def reservation_quotes_expire() -> tuple[int, int]:
    """Hourly: remind of quotes about to lapse, then mark lapsed ones "quote expired"."""
    return reminders.reservation_quotes_expire()
