"""Invoices (numbered without gaps), payments, credit notes and credit grants."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, Sum

from portal.accounts.models import User
from portal.audit.services import audit_record
from portal.billing import clock, dunning, rating, signals
from portal.billing.conf import setting
from portal.billing.models import (
    CreditApplication,
    CreditGrant,
    CreditKind,
    CreditNote,
    Invoice,
    InvoiceLine,
    NumberSequence,
    Payment,
    UsageInterval,
)
from portal.billing.money import ZERO, cents
from portal.billing.payments import get_provider
from portal.billing.periods import Month
from portal.billing.reservations import reservation_lines
from portal.billing.selectors import invoice_balance_due
from portal.billing.services.usage_sync import usage_sync_organization, usage_sync_pending
from portal.billing.storage import storage_lines
from portal.lib.errors import ApplicationError
from portal.notifications.services import notify
from portal.orgs.models import Organization

logger = logging.getLogger(__name__)

MAX_MONEY = Decimal("999999999999.99")


def _next_number(series: str) -> str:
    """The next number of `series` (BF-2026 → BF-2026-000042), without gaps.

    The counter row is locked until the caller's transaction ends; if that transaction rolls
    back, so does the increment, so no number is ever skipped or used twice.
    """
    NumberSequence.objects.bulk_create([NumberSequence(series=series)], ignore_conflicts=True)
    sequence = NumberSequence.objects.select_for_update().get(series=series)
    sequence.last_value += 1
    sequence.save(update_fields=["last_value"])
    return f"{series}-{sequence.last_value:06d}"


# --- Invoices ---------------------------------------------------------------------------------


def _month_has_ended(month: Month, now) -> None:
    if month.end > now:
        raise ApplicationError(
            f"{month.label} has not ended yet; its invoice can be issued from "
            f"{month.end:%B} {month.end.day}, {month.end.year}.",
            code="month_not_ended",
            field="month",
        )


def _already_issued(organization: Organization, month: Month) -> None:
    existing = Invoice.objects.filter(organization=organization, month=month.first_day).first()
    if existing is not None:
        raise ApplicationError(
            f"{organization.name} already has invoice {existing.number} for {month.label}; "
            "corrections are credit notes on it.",
            code="already_issued",
            field="month",
        )


def _grants_with_remaining(organization: Organization, kind: str, currency: str):
    """The organization's grants of this kind that have money left, oldest first, locked."""
    grants = list(
        CreditGrant.objects.select_for_update()
        .filter(organization=organization, kind=kind, currency=currency)
        .order_by("created_at", "id")
    )
    used = dict(
        CreditApplication.objects.filter(grant__in=grants)
        .values("grant_id")
        .annotate(used=Sum("amount"))
        .values_list("grant_id", "used")
    )
    return [(grant, grant.amount - used.get(grant.pk, ZERO)) for grant in grants]


def _apply(grants, up_to: Decimal) -> list[tuple[CreditGrant, Decimal]]:
    """Take from the grants, oldest first, up to `up_to`."""
    taken = []
    left = up_to
    for grant, remaining in grants:
        if left <= 0:
            break
        amount = min(remaining, left)
        if amount > 0:
            taken.append((grant, amount))
            left -= amount
    return taken


def invoice_issue(
    *, organization: Organization, month: Month, issued_by: User | None = None
) -> Invoice:
    """Issue the organization's invoice for a calendar month that has ended.

    Refuses a month not yet over, a second invoice for the same month, and a month without
    usage. Lines per instance type, region, kind and unit price; credits reduce the taxable
    amount, tax at settings.TAX_RATE, then the prepaid balance pays what it can.
    """
    now = clock.now()
    _month_has_ended(month, now)
    _already_issued(organization, month)
    usage_sync_organization(organization=organization, since=month.start)
    provider = get_provider()
    with transaction.atomic():
        number = _next_number(f"{setting('BILLING_NUMBER_PREFIX')}-{now.year}")
        _already_issued(organization, month)  # again, now that issuing is serialized
        lines = list(
            rating.lines(organization_id=organization.pk, start=month.start, end=month.end, now=now)
        )
        lines += reservation_lines(
            organization_id=organization.pk, start=month.start, end=month.end, now=now
        )
        lines += storage_lines(
            organization_id=organization.pk, start=month.start, end=month.end, now=now
        )
        if not lines:
            raise ApplicationError(
                f"{organization.name} used nothing in {month.label}; there is nothing to invoice.",
                code="no_usage",
                field="month",
            )
        currency = settings.CURRENCY
        foreign = sorted({line.currency for line in lines} - {currency})
        if foreign:
            raise ApplicationError(
                f"Usage of {month.label} is priced in {', '.join(foreign)}, not {currency}.",
                code="currency",
            )
        subtotal = rating.total(lines)
        credits = _apply(
            _grants_with_remaining(organization, CreditKind.CREDIT, currency), subtotal
        )
        credits_applied = sum((amount for _, amount in credits), ZERO)
        tax_rate = Decimal(settings.TAX_RATE)
        tax = cents((subtotal - credits_applied) * tax_rate)
        total = subtotal - credits_applied + tax
        prepaid = _apply(_grants_with_remaining(organization, CreditKind.PREPAID, currency), total)
        prepaid_applied = sum((amount for _, amount in prepaid), ZERO)
        amount_due = total - prepaid_applied
        invoice = Invoice.objects.create(
            organization=organization,
            number=number,
            month=month.first_day,
            period_start=month.start,
            period_end=month.end,
            issued_at=now,
            due_at=now + timedelta(days=setting("BILLING_OVERDUE_DAYS")),
            issued_by=issued_by,
            customer_name=organization.name,
            currency=currency,
            subtotal=subtotal,
            credits_applied=credits_applied,
            tax_rate=tax_rate,
            tax=tax,
            total=total,
            prepaid_applied=prepaid_applied,
            amount_due=amount_due,
            payment_provider=provider.name,
            paid_at=now if amount_due == 0 else None,
            payment_reference="Nothing to pay: covered by credits." if amount_due == 0 else "",
        )
        slices = (
            rating.spot_slices(
                organization_id=organization.pk, start=month.start, end=month.end, now=now
            )
            if any(line.averaged for line in lines)
            else []
        )
        InvoiceLine.objects.bulk_create(
            [
                InvoiceLine(
                    invoice=invoice,
                    position=position,
                    instance_type_id=line.instance_type_id,
                    region_id=line.region_id,
                    kind=line.kind,
                    description=line.description,
                    seconds=line.seconds,
                    gpu_seconds=line.gpu_seconds,
                    unit_price=line.unit_price,
                    amount=line.amount,
                    price_breakdown=(
                        [
                            [str(price), seconds]
                            for price, seconds in rating.line_breakdown(line, slices)
                        ]
                        if line.averaged
                        else []
                    ),
                )
                for position, line in enumerate(lines, start=1)
            ]
        )
        CreditApplication.objects.bulk_create(
            [
                CreditApplication(invoice=invoice, grant=grant, amount=amount)
                for grant, amount in [*credits, *prepaid]
            ]
        )
        provider.invoice_issued(invoice)
        audit_record(
            action="invoice.issued",
            organization=organization,
            actor=issued_by,
            actor_kind="staff" if issued_by is not None else None,
            actor_label=None if issued_by is not None else "invoices_issue_for_month",
            target=invoice,
            detail={"month": month.key, "total": total, "currency": currency},
        )
        signals.invoice_issued.send(sender=Invoice, invoice=invoice)
        notify("invoice_issued", invoice_id=invoice.pk)
        Invoice.objects.filter(pk=invoice.pk).update(emailed_at=clock.now())
    logger.info("invoice %s issued to %s for %s: %s", number, organization.pk, month.key, total)
    return invoice


def organizations_to_invoice(*, month: Month):
    """Organizations with usage in the month and no invoice for it yet."""
    return (
        Organization.objects.filter(
            Exists(
                UsageInterval.objects.filter(
                    organization=OuterRef("pk"), start__lt=month.end
                ).filter(Q(end__isnull=True) | Q(end__gt=month.start))
            )
        )
        .exclude(invoices__month=month.first_day)
        .order_by("pk")
    )


def invoices_issue_for_month(
    *,
    month: Month,
    issued_by: User | None = None,
    organizations: Iterable[Organization] | None = None,
) -> tuple[list[Invoice], list[str]]:
    """Issue the month's invoice of every organization that used something (or of those given).

    Each organization in its own transaction: one refusal does not stop the others. Returns
    the invoices issued and the refusals, one message each.
    """
    _month_has_ended(month, clock.now())
    if organizations is None:
        usage_sync_pending()
        organizations = organizations_to_invoice(month=month)
    issued, refused = [], []
    for organization in organizations:
        try:
            issued.append(
                invoice_issue(organization=organization, month=month, issued_by=issued_by)
            )
        except ApplicationError as error:
            refused.append(error.message)
    return issued, refused


def invoice_mark_paid(
    *, invoice: Invoice, by: User | None, reference: str = "", paid_at=None
) -> Invoice:
    """Record that the invoice was paid (invoice-and-pay: staff see the money arrive)."""
    now = clock.now()
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.paid_at is not None:
            raise ApplicationError(
                f"Invoice {invoice.number} was already marked paid on {invoice.paid_at:%Y-%m-%d}.",
                code="already_paid",
            )
        paid_at = paid_at or now
        if paid_at > now:
            raise ApplicationError("A payment cannot be in the future.", field="paid_at")
        Payment.objects.create(
            invoice=invoice,
            amount=invoice_balance_due(invoice),
            provider=invoice.payment_provider,
            reference=reference.strip()[:200],
            received_at=paid_at,
            recorded_by=by,
        )
        invoice.paid_at = paid_at
        invoice.paid_by = by
        invoice.payment_reference = reference.strip()[:200]
        invoice.save(update_fields=["paid_at", "paid_by", "payment_reference"])
        audit_record(
            action="invoice.paid",
            organization=invoice.organization,
            actor=by,
            actor_kind="staff" if by is not None else None,
            actor_label=None if by is not None else "billing",
            target=invoice,
            detail={"reference": invoice.payment_reference, "paid_at": paid_at},
        )
        dunning.dunning_lift(invoice=invoice)  # a suspension for this invoice ends with it
    return invoice


def parse_amount(value, *, field: str = "amount", what: str = "The amount") -> Decimal:
    """A positive amount of money with at most two decimals, or an ApplicationError."""
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ApplicationError(f"{what} must be a number, like 250.00.", field=field) from None
    if not amount.is_finite():
        raise ApplicationError(f"{what} must be a number, like 250.00.", field=field)
    if amount < 0:
        raise ApplicationError(f"{what} cannot be negative.", field=field)
    if amount == 0:
        raise ApplicationError(f"{what} must be more than zero.", field=field)
    if amount > MAX_MONEY:
        raise ApplicationError(f"{what} is too large.", field=field)
    if amount != amount.quantize(Decimal("0.01")):
        raise ApplicationError(f"{what} can have at most two decimals (cents).", field=field)
    return amount


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("Give a reason; the customer and the audit see it.", field="reason")
    if len(reason) > 500:
        raise ApplicationError("Keep the reason under 500 characters.", field="reason")
    return reason


def credit_note_issue(*, invoice: Invoice, amount, reason: str, by: User | None) -> CreditNote:
    """Take `amount` off an issued invoice. What it paid already becomes prepaid balance."""
    amount = parse_amount(amount)
    reason = _reason(reason)
    now = clock.now()
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        credited = invoice.credit_notes.aggregate(s=Sum("amount"))["s"] or ZERO
        if amount > invoice.total - credited:
            left = invoice.total - credited
            raise ApplicationError(
                f"Invoice {invoice.number} has {left} {invoice.currency} left to credit "
                f"(total {invoice.total}, credited {credited}).",
                field="amount",
            )
        balance = invoice_balance_due(invoice)
        note = CreditNote.objects.create(
            invoice=invoice,
            number=_next_number(f"{setting('BILLING_NUMBER_PREFIX')}-CN-{now.year}"),
            amount=amount,
            reason=reason,
            issued_at=now,
            issued_by=by,
        )
        refund = amount - min(amount, balance)
        if refund > 0:
            CreditGrant.objects.create(
                organization_id=invoice.organization_id,
                kind=CreditKind.PREPAID,
                amount=refund,
                currency=invoice.currency,
                reason=f"Credit note {note.number} on invoice {invoice.number}: {reason}",
                granted_by=by,
                created_at=now,
                credit_note=note,
            )
        audit_record(
            action="invoice.credit_note_issued",
            organization=invoice.organization,
            actor=by,
            actor_kind="staff" if by is not None else None,
            actor_label=None if by is not None else "billing",
            target=note,
            detail={"invoice": invoice.number, "amount": amount, "reason": reason},
        )
    return note


def credit_grant(
    *, organization: Organization, amount, reason: str, by: User | None, kind: str = "credit"
) -> CreditGrant:
    """Give the organization credit (or record a prepayment). A reason is required."""
    amount = parse_amount(amount)
    reason = _reason(reason)
    if kind not in CreditKind.values:
        raise ApplicationError(f"Unknown kind of credit {kind!r}.", field="kind")
    with transaction.atomic():
        grant = CreditGrant.objects.create(
            organization=organization,
            kind=kind,
            amount=amount,
            currency=settings.CURRENCY,
            reason=reason,
            granted_by=by,
            created_at=clock.now(),
        )
        audit_record(
            action="credit.granted",
            organization=organization,
            actor=by,
            actor_kind="staff" if by is not None else None,
            target=grant,
            detail={"kind": kind, "amount": amount, "currency": grant.currency, "reason": reason},
        )
    return grant
