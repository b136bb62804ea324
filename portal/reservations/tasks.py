"""Celery tasks of reserved capacity: ids in, one sync call or service, retries."""

from __future__ import annotations

from celery import shared_task

from portal.provisioning import TransientError
from portal.reservations import reminders, sync

OPTIONS = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (TransientError,),
    "retry_backoff": True,
    "max_retries": 8,
}


@shared_task(**OPTIONS)
def reservation_hold(reservation_id: int) -> bool:
    return sync.reservation_hold(reservation_id)


@shared_task(**OPTIONS)
def reservation_release(reservation_id: int) -> bool:
    return sync.reservation_release(reservation_id)


@shared_task(acks_late=True)
def reservation_reminders() -> int:
    """Daily: "starting in 7 days" and "ending in 7 days", once per reservation."""
    return reminders.reservation_reminders_send()
