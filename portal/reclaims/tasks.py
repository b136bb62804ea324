"""Reclaim tasks: thin, idempotent, retried with backoff on transient backend errors."""

from __future__ import annotations

from celery import shared_task

from portal.instances.tasks import backoff
from portal.provisioning import TransientError
from portal.reclaims import services, sync


@shared_task(bind=True, acks_late=True, max_retries=10)
def reclaim_order_tell_backend(self, order_id: int) -> int:
    """Tell the backend to end the order's victims at their time."""
    try:
        return sync.order_tell_backend(order_id)
    except TransientError as exc:
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc


@shared_task(bind=True, acks_late=True, max_retries=10)
def reclaim_notice_sync(self, instance_id: int) -> bool:
    """Show the instance's price reclaim time on its machine (or take it off)."""
    try:
        return sync.instance_notice_sync(instance_id)
    except TransientError as exc:
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc


@shared_task(acks_late=True)
def reclaim_orders_sweep() -> int:
    """Periodic: close orders whose victims ended without the portal hearing of it, and tell
    the backend of price reclaims whose notice is over."""
    for order_id in sync.price_victims_due():
        reclaim_order_tell_backend.delay(order_id)
    return services.orders_sweep()
