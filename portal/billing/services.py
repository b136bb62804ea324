"""Writes of billing: metering, invoices, credits, credit notes, payments, budgets.

Every function here may run twice without harm: metering recomputes an instance's intervals
from its timeline under a row lock; invoices are unique per organization and month and take
their number from a locked counter in the same transaction; budget e-mails claim a unique
marker row before they are sent.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, Max, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce

from portal.accounts.models import User
from portal.audit.services import audit_record
from portal.billing import budget_stops, clock, dunning, metering, rating, sealing, signals, usage
from portal.billing.conf import setting
from portal.billing.models import (
    Budget,
    BudgetAlert,
    CreditApplication,
    CreditGrant,
    CreditKind,
    CreditNote,
    InstanceMeter,
    Invoice,
    InvoiceLine,
    NumberSequence,
    Payment,
    UsageInterval,
)
from portal.billing.money import ZERO, cents
from portal.billing.payments import get_provider
from portal.billing.periods import Month, midnight
from portal.billing.reservations import reservation_lines
from portal.billing.selectors import invoice_balance_due, month_spend
from portal.billing.storage import storage_lines
from portal.catalog.models import Price
from portal.instances.models import Instance, InstanceEvent
from portal.lib.errors import ApplicationError
from portal.market.locks import spot_history_read_lock
from portal.notifications.services import notify
from portal.orgs.models import Organization

logger = logging.getLogger(__name__)

MAX_MONEY = Decimal("999999999999.99")


# --- Metering ---------------------------------------------------------------------------------


def _frozen_before(organization_ids: set[int]) -> dict[int, Any]:
    """Usage before the end of an organization's last invoiced month is never rewritten: that
    end per organization (none: nothing invoiced)."""
    return dict(
        Invoice.objects.filter(organization_id__in=organization_ids)
        .values("organization_id")
        .annotate(end=Max("period_end"))
        .values_list("organization_id", "end")
    )


def usage_sync_instance(*, instance_id: int) -> None:
    """Bring the instance's usage intervals in line with its timeline. Idempotent.

    Recomputes the billed pieces from every state change of the instance (so an event that
    reconciliation backdates, or a task that runs twice, changes nothing that is already right)
    and writes the difference, inside one transaction holding the instance's row lock. Months
    already invoiced are left alone; an open piece reaching into them is closed at their end.
    """
    usage_sync_instances(instance_ids=[instance_id])


def usage_sync_instances(*, instance_ids: Iterable[int]) -> None:
    """`usage_sync_instance` of many instances at once (a cluster's nodes that changed state
    together), in one transaction holding their row locks: the same intervals, each
    instance's computed from its own timeline by `metering.pieces`, read and written with
    one query per kind of row rather than per instance."""
    ids = sorted(set(instance_ids))
    if not ids:
        return
    now = clock.now()
    with transaction.atomic():
        instances = list(
            Instance.objects.select_for_update(of=("self",))
            .only(
                *("id", "organization_id", "instance_type_id", "region_id", "gpus"),
                *("preemptible", "cluster_id"),
            )
            .filter(pk__in=ids)
            .order_by("pk")
        )
        if not instances:
            return
        ids = [instance.pk for instance in instances]
        # What closes here is sealed at the spot prices.
        for type_id in sorted({i.instance_type_id for i in instances if i.preemptible}):
            spot_history_read_lock(type_id)
        events: dict[int, list[tuple[int, Any, str]]] = defaultdict(list)
        for pk, instance_id, at, state in (
            InstanceEvent.objects.filter(instance_id__in=ids)
            .exclude(to_state="")
            .order_by("instance_id", "at", "id")
            .values_list("id", "instance_id", "at", "to_state")
        ):
            events[instance_id].append((pk, at, state))
        prices: dict[int, list[metering.PricePoint]] = defaultdict(list)
        for p in Price.objects.filter(
            instance_type_id__in={instance.instance_type_id for instance in instances}
        ):
            prices[p.instance_type_id].append(metering.PricePoint.of(p))
        frozen_of = _frozen_before({instance.organization_id for instance in instances})
        # What is invoiced stays, but for what reaches across it.
        reach = Q(instance_id__in=[i.pk for i in instances if i.organization_id not in frozen_of])
        for organization_id, frozen in frozen_of.items():
            reach |= Q(
                Q(start__gte=frozen) | Q(end__isnull=True) | Q(end__gt=frozen),
                instance_id__in=[i.pk for i in instances if i.organization_id == organization_id],
            )
        existing: dict[int, list[UsageInterval]] = defaultdict(list)
        for row in UsageInterval.objects.filter(reach):
            existing[row.instance_id].append(row)

        crossing: dict[Any, list[int]] = defaultdict(list)  # by the boundary they close at
        sealed_crossing: list[int] = []  # of preemptible instances
        changed: dict[int, bool] = {}  # organization: whether sealed usage changed
        stale: list[int] = []
        new: list[UsageInterval] = []
        preemptible_new: set[int] = set()
        meters: list[InstanceMeter] = []
        for instance in instances:
            timeline = events[instance.pk]
            wanted = metering.pieces(
                [metering.Transition(at=at, to_state=state) for _, at, state in timeline],
                preemptible=instance.preemptible,
                prices=prices[instance.instance_type_id],
                now=now,
                default_currency=settings.CURRENCY,
            )
            rows = existing[instance.pk]
            frozen = frozen_of.get(instance.organization_id)
            closed_at_invoice = False
            if frozen is not None:
                # What was still open when its month was invoiced ends at the invoiced
                # boundary; the rest of the timeline before it stays as it was billed.
                across = [row.pk for row in rows if row.start < frozen]
                if across:
                    closed_at_invoice = True
                    crossing[frozen] += across
                    if instance.preemptible:
                        sealed_crossing += across
                rows = [row for row in rows if row.start >= frozen]
                wanted = [
                    _after(piece, frozen)
                    for piece in wanted
                    if piece.end is None or piece.end > frozen
                ]
            have = {row.key(): row.pk for row in rows}
            want = {piece.key(): piece for piece in wanted}
            stale += [pk for key, pk in have.items() if key not in want]
            # Keys begin with the start: a change to a day before today is a change to sealed
            # usage.
            touched = [key[0] for key in have if key not in want]
            touched += [key[0] for key in want if key not in have]
            if closed_at_invoice or touched:
                sealed = closed_at_invoice or any(start < midnight(now) for start in touched)
                organization_id = instance.organization_id
                changed[organization_id] = changed.get(organization_id, False) or sealed
            for key, piece in want.items():
                if key in have:
                    continue
                new.append(
                    UsageInterval(
                        instance_id=instance.pk,
                        organization_id=instance.organization_id,
                        instance_type_id=instance.instance_type_id,
                        region_id=instance.region_id,
                        gpus=instance.gpus,
                        kind=piece.kind,
                        start=piece.start,
                        end=piece.end,
                        price_id=piece.price_id,
                        unit_price=piece.unit_price,
                        currency=piece.currency,
                        cluster=instance.cluster_id is not None,
                    )
                )
            if instance.preemptible:
                preemptible_new.add(instance.pk)
            meters.append(
                InstanceMeter(
                    instance_id=instance.pk,
                    last_event_id=max((pk for pk, _, _ in timeline), default=0),
                    synced_at=now,
                )
            )
        for frozen, pks in crossing.items():
            UsageInterval.objects.filter(pk__in=pks).update(end=frozen)
        for organization_id, sealed in changed.items():
            usage.usage_changed(organization_id, sealed=sealed)
        if stale:
            UsageInterval.objects.filter(pk__in=stale).delete()
        created = UsageInterval.objects.bulk_create(new)
        closed = [
            row.pk for row in created if row.end is not None and row.instance_id in preemptible_new
        ]
        closed += sealed_crossing
        if closed:
            sealing.spot_seal(UsageInterval.objects.filter(pk__in=closed))
        InstanceMeter.objects.bulk_create(  # one upsert
            meters,
            update_conflicts=True,
            unique_fields=["instance"],
            update_fields=["last_event_id", "synced_at"],
        )


def _after(piece: metering.Piece, boundary) -> metering.Piece:
    if piece.start >= boundary:
        return piece
    return metering.Piece(boundary, *piece.key()[1:])


def instances_needing_sync(*, after_event: int = 0) -> list[int]:
    """Instances whose usage may be out of date: a state change not read yet (of the events
    after `after_event`: see `usage_sync_pending`), or an open piece that crossed a UTC
    midnight or a price change since it was written."""
    now = clock.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    seen = Subquery(
        InstanceMeter.objects.filter(instance_id=OuterRef("instance_id")).values("last_event_id")
    )
    with_new_events = (
        InstanceEvent.objects.filter(id__gt=after_event)
        .exclude(to_state="")
        .annotate(seen=Coalesce(seen, 0))
        .filter(id__gt=F("seen"))
        .values_list("instance_id", flat=True)
        .distinct()
    )
    open_pieces = UsageInterval.objects.filter(end__isnull=True).filter(
        Q(start__lt=midnight)
        | Exists(
            Price.objects.filter(
                instance_type_id=OuterRef("instance_type_id"),
                valid_from__gt=OuterRef("start"),
                valid_from__lte=now,
            )
        )
    )
    ids = set(with_new_events) | set(open_pieces.values_list("instance_id", flat=True))
    return sorted(ids)


# Events up to the highest id of a run at least this long ago are known read: a transaction
# that took its event's id before then has committed by now (a longer one is looked for
# again only by a run whose mark is older than it).
PENDING_LAG = timedelta(minutes=10)
PENDING_MARKS_KEY = "billing:usage-pending-marks"


def usage_sync_pending() -> int:
    """Sync every instance that needs it; returns how many were synced.

    Runs every minute as a safety net (state changes are metered on commit), so it does not
    read every state change ever made: a completed run notes the highest event id there was
    when it began, and a later run looks only after the mark of a run at least PENDING_LAG
    old. A run that fails notes nothing; without the marks (a cache flushed) it reads all."""
    now = clock.now().timestamp()
    marks: list[tuple[float, int]] = cache.get(PENDING_MARKS_KEY) or []
    settled = [mark for mark in marks if mark[0] <= now - PENDING_LAG.total_seconds()]
    after = max((event_id for _at, event_id in settled), default=0)
    top = InstanceEvent.objects.aggregate(top=Max("id"))["top"] or 0
    if after > top:  # the database went back (a restore) under a cache that did not: read all
        marks, settled, after = [], [], 0
    ids = instances_needing_sync(after_event=after)
    for instance_id in ids:
        usage_sync_instance(instance_id=instance_id)
    recent = [mark for mark in marks if mark[0] > now - PENDING_LAG.total_seconds()]
    cache.set(PENDING_MARKS_KEY, [*settled[-1:], *recent, (now, top)], timeout=None)
    return len(ids)


def usage_sync_organization(*, organization: Organization, since=None) -> None:
    """Sync the organization's instances that may have usage after `since` (all if None)."""
    instances = Instance.objects.filter(organization=organization)
    if since is not None:
        instances = instances.filter(Q(terminated_at__isnull=True) | Q(terminated_at__gte=since))
    for instance_id in instances.values_list("pk", flat=True):
        usage_sync_instance(instance_id=instance_id)


# --- Numbers ----------------------------------------------------------------------------------


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


# --- Budgets ----------------------------------------------------------------------------------


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
