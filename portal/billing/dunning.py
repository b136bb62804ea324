"""Overdue invoices: reminders on the days the operator sets, then (optionally) suspension.

Launches are paused from the due date on (selectors.launch_block_reason); this adds the steps
that follow: `dunning_run` (a periodic task) e-mails a reminder BILLING_DUNNING_REMINDER_DAYS
after the due date, and suspends the organization BILLING_DUNNING_SUSPEND_DAYS after it if
that is set. Each step is a DunningStep row, claimed by its insert (unique per invoice and
step), so no step is taken twice; each is audited and e-mailed. `dunning_lift`, called when the
invoice is paid, lifts a suspension dunning made once nothing else is overdue.
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction

from portal.audit.services import audit_record
from portal.billing import clock
from portal.billing.conf import setting
from portal.billing.models import DunningStep, Invoice
from portal.billing.money import Money
from portal.billing.selectors import invoice_balance_due, overdue_invoices
from portal.lib.errors import ApplicationError
from portal.notifications.services import notify
from portal.orgs.models import Organization
from portal.orgs.selectors import organization_suspension
from portal.orgs.services import organization_suspend, organization_unsuspend

SYSTEM = "dunning"  # the actor in the audit log: "Backfill, overdue invoices"
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
    suspend_days = int(setting("BILLING_DUNNING_SUSPEND_DAYS") or 0)
    taken = 0
    for organization in Organization.objects.filter(invoices__paid_at__isnull=True).distinct():
        for invoice in overdue_invoices(organization=organization, now=now):
            days = (now - invoice.due_at).days
            due = [day for day in reminder_days if day <= days]
            claimed = [day for day in due if _claim(invoice, f"reminder-{day}", now)]
            if claimed:  # several due at once (the task was down): one e-mail, the latest
                _remind(invoice, days=days, now=now)
                taken += 1
            if suspend_days and days >= suspend_days:
                taken += _suspend(invoice, days=days, now=now)
    return taken


def _remind(invoice: Invoice, *, days: int, now: datetime) -> None:
    audit_record(
        action="invoice.overdue_reminder",
        organization=invoice.organization,
        actor_label=SYSTEM,
        target=invoice,
        detail={"days_overdue": days, "balance_due": invoice_balance_due(invoice)},
    )
    suspend_days = int(setting("BILLING_DUNNING_SUSPEND_DAYS") or 0)
    notify(
        "invoice_overdue",
        invoice_id=invoice.pk,
        days_overdue=days,
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
