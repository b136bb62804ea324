"""Budgets: the monthly amount, its thresholds e-mailed once a month, and the hard limit."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction

from portal.accounts.models import User
from portal.audit.services import audit_record
from portal.billing import budget_stops, clock, signals
from portal.billing.conf import setting
from portal.billing.models import (
    Budget,
    BudgetAlert,
)
from portal.billing.periods import Month
from portal.billing.selectors import month_spend
from portal.billing.services.invoices import parse_amount
from portal.notifications.services import notify
from portal.orgs.models import Organization


def budget_set(
    *,
    organization: Organization,
    amount,
    hard_limit: bool,
    by: User | None,
    stop_instances: bool = False,
) -> Budget | None:
    """Set the monthly budget (None or '' removes it), then look at the thresholds at once.
    `stop_instances` (only with `hard_limit`): at 100 % running instances are stopped too."""
    if amount is None or (isinstance(amount, str) and not amount.strip()):
        with transaction.atomic():
            removed, _ = Budget.objects.filter(organization=organization).delete()
            if removed:
                audit_record(
                    action="budget.changed",
                    organization=organization,
                    actor=by,
                    detail={"amount": None},
                )
        return None
    amount = parse_amount(amount, what="The budget")
    with transaction.atomic():
        budget, _ = Budget.objects.update_or_create(
            organization=organization,
            defaults={
                "amount": amount,
                "currency": settings.CURRENCY,
                "hard_limit": bool(hard_limit),
                "stop_instances": bool(hard_limit) and bool(stop_instances),
                "updated_at": clock.now(),
                "updated_by": by,
            },
        )
        audit_record(
            action="budget.changed",
            organization=organization,
            actor=by,
            target=budget,
            detail={
                "amount": amount,
                "currency": budget.currency,
                "hard_limit": budget.hard_limit,
                "stop_instances": budget.stop_instances,
            },
        )
    budget_check(organization=organization)
    budget_stops.budget_stops_due(organization_id=organization.pk)  # raised: stops called off
    return budget


def budget_check(*, organization: Organization) -> list[int]:
    """Send the budget e-mail for each threshold reached this month and not yet told.

    A threshold is claimed by inserting its marker row (unique per organization, month and
    threshold); only the inserter sends. Several thresholds reached at once make one e-mail,
    about the highest. Returns the thresholds newly reached.
    """
    budget = Budget.objects.filter(organization=organization).first()
    if budget is None:
        return []
    now = clock.now()
    month = Month.of(now)
    spend = month_spend(organization=organization, month=month, now=now)
    reached = [t for t in setting("BILLING_BUDGET_THRESHOLDS") if spend * 100 >= budget.amount * t]
    claimed: list[BudgetAlert] = []
    for threshold in reached:
        try:
            with transaction.atomic():
                alert = BudgetAlert.objects.create(
                    organization=organization,
                    month=month.first_day,
                    threshold=threshold,
                    spend=spend,
                    budget_amount=budget.amount,
                    sent_at=now,
                )
                signals.budget_threshold_reached.send(sender=BudgetAlert, alert=alert)
            claimed.append(alert)
        except IntegrityError:
            continue  # told before (or by a concurrent check)
    if claimed:
        highest = max(claimed, key=lambda alert: alert.threshold)
        notify("budget_threshold", alert_id=highest.pk)
        if highest.threshold >= 100 and budget.hard_limit and budget.stop_instances:
            budget_stops.budget_stop_notice(organization=organization, alert=highest)
    return [alert.threshold for alert in claimed]


def budgets_check_all() -> int:
    """Check every organization with a budget; returns how many e-mails were claimed."""
    sent = 0
    for organization in Organization.objects.filter(budget__isnull=False):
        sent += bool(budget_check(organization=organization))
    budget_stops.budget_stops_due()  # the safety net of the task at each notice's end
    return sent
