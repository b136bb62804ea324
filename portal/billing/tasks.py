"""Celery tasks of billing: thin interfaces to portal.billing.services, all safe to run twice.

Scheduled with django-celery-beat (see migrations/0002_periodic_tasks.py).
"""

from __future__ import annotations

import logging

from celery import shared_task

from portal.billing import budget_stops, clock, dunning, services
from portal.billing.periods import Month

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def usage_sync_instance(instance_id: int) -> None:
    services.usage_sync_instance(instance_id=instance_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def usage_sync_pending() -> int:
    """Every few minutes: meter the instances with new state changes or crossed boundaries."""
    return services.usage_sync_pending()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def budgets_check() -> int:
    """Every few minutes: budget e-mails for thresholds reached (each once a month)."""
    services.usage_sync_pending()
    return services.budgets_check_all()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def budget_stops_due(organization_id: int) -> list[int]:
    """At the end of a budget stop's notice: stop the instances, unless the limit was lifted."""
    return budget_stops.budget_stops_due(organization_id=organization_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def invoices_issue_last_month() -> int:
    """On the 1st of each month: issue last month's invoices. A rerun skips issued ones."""
    month = Month.of(clock.now()).previous()
    issued, refused = services.invoices_issue_for_month(month=month)
    for message in refused:
        logger.warning("invoice for %s not issued: %s", month.key, message)
    return len(issued)


@shared_task(acks_late=True)
def dunning_run() -> int:
    """Hourly: reminders of overdue invoices, then (if set) suspension; each step once."""
    return dunning.dunning_run()
