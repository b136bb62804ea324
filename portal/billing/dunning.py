"""Overdue invoices: reminders on the days the operator sets, then launches paused, then
(optionally) suspension.

`dunning_run` (a periodic task) takes each step on its day after the due date: a reminder on
each of BILLING_DUNNING_REMINDER_DAYS, launches paused on BILLING_DUNNING_PAUSE_DAYS (the hold
itself is `selectors.launch_block_reason`, by the same day, so it holds even before this task
runs), and the organization suspended on BILLING_DUNNING_SUSPEND_DAYS if that is set. Each step
is a DunningStep row, claimed by its insert (unique per invoice and step), so no step is taken
twice; each is audited, and e-mailed (steps due in the same run share one e-mail).
`dunning_lift`, called when the invoice is paid, lifts a suspension dunning made once nothing
else is overdue; the pause lifts with the payment by itself.
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction

from portal.audit.services import audit_record
from portal.billing import clock
from portal.billing.conf import setting
from portal.billing.models import DunningStep, Invoice
from portal.billing.money import Money
from portal.billing.selectors import (
    invoice_balance_due,
    launches_paused_due_before,
    overdue_invoices,
)
from portal.lib.errors import ApplicationError
from portal.notifications.services import notify
from portal.orgs.models import Organization
from portal.orgs.selectors import organization_suspension
from portal.orgs.services import organization_suspend, organization_unsuspend

SYSTEM = "dunning"  # the actor in the audit log: "Backfill, overdue invoices"
PAUSED = "launches-paused"
SUSPENDED = "suspended"


def _claim(invoice: Invoice, step: str, now: datetime) -> DunningStep | None:
    try:
        with transaction.atomic():
            return DunningStep.objects.create(invoice=invoice, step=step, taken_at=now)
    except IntegrityError:
        return None  # taken before


def dunning_run(*, now: datetime | None = None) -> int:
    """Take every step that is due for every overdue invoice; returns how many were taken."""
    now = now or clock.now()
    reminder_days = sorted(int(day) for day in setting("BILLING_DUNNING_REMINDER_DAYS"))
    pause_days = int(setting("BILLING_DUNNING_PAUSE_DAYS") or 0)
    suspend_days = int(setting("BILLING_DUNNING_SUSPEND_DAYS") or 0)
    taken = 0
    for organization in Organization.objects.filter(invoices__paid_at__isnull=True).distinct():
        for invoice in overdue_invoices(organization=organization, now=now):
            days = (now - invoice.due_at).days
            due = [day for day in reminder_days if day <= days]
            claimed = [day for day in due if _claim(invoice, f"reminder-{day}", now)]
            paused = (
                invoice.due_at < launches_paused_due_before(now)
                and _claim(invoice, PAUSED, now) is not None
            )
            if claimed:
                _audit(invoice, "invoice.overdue_reminder", days=days)
                taken += 1
            if paused:
                _audit(invoice, "invoice.launches_paused", days=days)
                taken += 1
            if claimed or paused:  # several due at once (the task was down): one e-mail
                _remind(invoice, days=days, pause_days=pause_days, suspend_days=suspend_days)
            if suspend_days and days >= suspend_days:
                taken += _suspend(invoice, days=days, now=now)
    return taken


def _audit(invoice: Invoice, action: str, *, days: int) -> None:
    audit_record(
        action=action,
        organization=invoice.organization,
        actor_label=SYSTEM,
        target=invoice,
        detail={"days_overdue": days, "balance_due": invoice_balance_due(invoice)},
    )


def _remind(invoice: Invoice, *, days: int, pause_days: int, suspend_days: int) -> None:
    notify(
        "invoice_overdue",
        invoice_id=invoice.pk,
        days_overdue=days,
        pause_in_days=max(0, pause_days - days),
        suspend_in_days=max(0, suspend_days - days) if suspend_days else None,
    )


def _suspend(invoice: Invoice, *, days: int, now: datetime) -> int:
    organization = invoice.organization
    if organization_suspension(organization) is not None:
        return 0  # suspended already (by staff, or for another invoice): nothing to add
    step = _claim(invoice, SUSPENDED, now)
    if step is None:
        return 0
    balance = Money(invoice_balance_due(invoice), invoice.currency)
    suspension = organization_suspend(
        organization=organization,
        by=None,
        system=SYSTEM,
        reason=(
            f"Invoice {invoice.number} ({balance}) is {days} days overdue. Pay it to lift the "
            "suspension: it is lifted as soon as the payment is recorded."
        ),
    )
    DunningStep.objects.filter(pk=step.pk).update(suspension=suspension)
    return 1


def dunning_lift(*, invoice: Invoice) -> bool:
    """The invoice is paid: lift the suspension dunning made for it, unless another invoice
    is still overdue (its own steps go on). Returns whether a suspension was lifted."""
    step = (
        DunningStep.objects.filter(invoice=invoice, step=SUSPENDED, suspension__isnull=False)
        .select_related("suspension")
        .first()
    )
    organization = invoice.organization
    if step is None or step.suspension is None or step.suspension.lifted_at is not None:
        return False
    if overdue_invoices(organization=organization).exclude(pk=invoice.pk).exists():
        return False
    current = organization_suspension(organization)
    if current is None or current.pk != step.suspension_id:
        return False  # staff lifted it, or suspended again for their own reason: theirs
    try:
        organization_unsuspend(
            organization=organization,
            by=None,
            system=SYSTEM,
            note=f"Invoice {invoice.number} is paid.",
        )
    except ApplicationError:
        return False
    return True
