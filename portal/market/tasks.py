"""Celery tasks of the market: thin interfaces to the services."""

from __future__ import annotations

from celery import shared_task

from portal.market import services


@shared_task(acks_late=True)
def spot_prices_adjust() -> int:
    """Periodic (and after each capacity snapshot): every offer's price one step on."""
    return services.spot_prices_adjust()


@shared_task(acks_late=True)
def after_capacity_snapshot() -> None:
    """A capacity snapshot was stored: prices follow it, then the capacity alerts are checked."""
    services.spot_prices_adjust()
    services.capacity_alerts_check()
