"""Reads of billing, scoped to one organization. Money comes from `portal.billing.rating`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Field, OuterRef, Prefetch, QuerySet, Subquery, Sum, Value
from django.db.models.expressions import Col, RawSQL
from django.db.models.functions import Coalesce
from django.http import Http404

from portal.billing import clock, rating, usage
from portal.billing.chart import BarChart, bar_chart
from portal.billing.conf import setting
from portal.billing.models import (
    Budget,
    CreditApplication,
    CreditGrant,
    CreditKind,
    CreditNote,
    Invoice,
    InvoiceLine,
)
from portal.billing.money import SECONDS_PER_HOUR, ZERO, Money, cents
from portal.billing.periods import Month
from portal.billing.reservations import reservation_lines
from portal.billing.storage import storage_lines
from portal.orgs.models import Organization
from portal.orgs.roles import Role
from portal.reservations.models import Reservation
from portal.web.fields import MoneyField
from portal.web.sql import column, table

MONEY_FIELD: MoneyField[Decimal, Decimal] = MoneyField()


def month_spend(
    *, organization: Organization, month: Month, now: datetime | None = None
) -> Decimal:
    """What the month's usage costs so far (before credits and tax), as its lines round it."""
    return usage.month_spend(organization_id=organization.pk, month=month, now=now or clock.now())


# --- Invoices ---------------------------------------------------------------------------------


def _credited():
    return Coalesce(
        Subquery(
            CreditNote.objects.filter(invoice=OuterRef("pk"))
            .values("invoice")
            .annotate(s=Sum("amount"))
            .values("s"),
            output_field=MONEY_FIELD,
        ),
        Value(ZERO),
        output_field=MONEY_FIELD,
    )


def invoice_list_for_organization(*, organization: Organization) -> QuerySet[Invoice]:
    return Invoice.objects.filter(organization=organization).annotate(credited=_credited())


def invoice_get_for_organization(
    *, organization: Organization, pk: int, with_lines: bool = False
) -> Invoice:
    """The invoice with this id of this organization; 404 for any other. `with_lines`: its
    lines read too, with their type and region (invoice.lines.all() needs no more queries)."""
    invoices = invoice_list_for_organization(organization=organization).select_related(
        "organization"
    )
    if with_lines:
        invoices = invoices.prefetch_related(
            Prefetch(
                "lines",
                queryset=InvoiceLine.objects.select_related("instance_type__gpu_model", "region"),
            )
        )
    invoice = invoices.filter(pk=pk).first()
    if invoice is None:
        raise Http404("No such invoice")
    return invoice


def invoice_balance_due(invoice: Invoice) -> Decimal:
    """What is still to pay: the amount due less credit notes, nothing once paid."""
    if invoice.paid_at is not None:
        return ZERO
    credited = getattr(invoice, "credited", None)
    if credited is None:
        credited = invoice.credit_notes.aggregate(s=Sum("amount"))["s"] or ZERO
    return max(ZERO, invoice.amount_due - credited)


def invoice_status(invoice: Invoice, now: datetime | None = None) -> tuple[str, str]:
    """(label, badge colour) for an invoice."""
    now = now or clock.now()
    if invoice.paid_at is not None:
        return "Paid", "ok"
    if invoice_balance_due(invoice) == 0:
        return "Credited", "ok"
    if invoice.due_at < now:
        return "Overdue", "danger"
    return "Open", "info"


def overdue_invoices(*, organization: Organization, now: datetime | None = None):
    now = now or clock.now()
    return (
        invoice_list_for_organization(organization=organization)
        .filter(paid_at__isnull=True, due_at__lt=now)
        .exclude(amount_due__lte=_credited())
        .order_by("due_at")
    )


def launches_paused_due_before(now: datetime) -> datetime:
    """Launches are paused by an unpaid invoice due before this moment: BILLING_DUNNING_PAUSE_DAYS
    after its due date (`portal.billing.dunning` e-mails and audits that step)."""
    return now - timedelta(days=int(setting("BILLING_DUNNING_PAUSE_DAYS") or 0))


def organization_has_overdue_invoice(organization: Organization) -> bool:
    """An issued invoice past its due date and not paid (what quota standing asks)."""
    return overdue_invoices(organization=organization).exists()


def organization_overdue_reason(organization: Organization) -> str | None:
    """The hold an overdue invoice puts on the organization (portal.orgs.standing)."""
    if not organization_has_overdue_invoice(organization):
        return None
    return "An invoice is unpaid past its due date."


@dataclass(frozen=True, slots=True)
class InvoiceRow:
    """A row of the invoice list: the invoice, its status and what is still to pay."""

    invoice: Invoice
    status: str
    status_class: str
    balance_due: Decimal


def invoice_row_list_for_organization(*, organization: Organization) -> list[InvoiceRow]:
    """The organization's invoices, newest first, as rows (one query)."""
    invoices = invoice_list_for_organization(organization=organization).order_by(
        "-month", "-number"
    )
    return [
        InvoiceRow(invoice, *invoice_status(invoice), balance_due=invoice_balance_due(invoice))
        for invoice in invoices
    ]


@dataclass(frozen=True)
class InvoiceView:
    invoice: Invoice
    lines: list
    applications: list
    credit_notes: list
    payments: list
    balance_due: Decimal
    status: str
    status_class: str


def invoice_view(*, invoice: Invoice) -> InvoiceView:
    status, status_class = invoice_status(invoice)
    return InvoiceView(
        invoice=invoice,
        lines=list(invoice.lines.select_related("instance_type__gpu_model", "region")),
        applications=list(invoice.applications.select_related("grant")),
        credit_notes=list(invoice.credit_notes.all()),
        payments=list(invoice.payments.all()),
        balance_due=invoice_balance_due(invoice),
        status=status,
        status_class=status_class,
    )


# --- Credits ----------------------------------------------------------------------------------


def credit_balances(*, organization: Organization) -> dict[str, Decimal]:
    """What is left of the organization's credit and prepaid balance: each kind's grants less
    what was applied of them. Two plain sums (the second only if there are grants), cheaper to
    build than one with a subquery per grant."""
    granted = dict(
        CreditGrant.objects.filter(organization=organization)
        .values("kind")
        .annotate(s=Sum("amount"))
        .order_by()
        .values_list("kind", "s")
    )
    used: dict[str, Decimal] = {}
    if granted:
        used = dict(
            CreditApplication.objects.filter(grant__organization=organization)
            .values("grant__kind")
            .annotate(s=Sum("amount"))
            .order_by()
            .values_list("grant__kind", "s")
        )
    return {
        kind: granted.get(kind, ZERO) - used.get(kind, ZERO)
        for kind in (CreditKind.CREDIT, CreditKind.PREPAID)
    }


def _credited_sql() -> RawSQL:
    """`_credited()` as plain SQL on an invoice row (0.05 ms to build, against ~1 ms for the
    Subquery or a second query): its credit notes' sum, 0 without any."""
    quote = connection.ops.quote_name
    notes = CreditNote._meta
    amount, invoice = notes.get_field("amount"), notes.get_field("invoice")
    assert isinstance(invoice, Field) and invoice.column and isinstance(amount, Field)
    row = f"{quote(Invoice._meta.db_table)}.{quote(Invoice._meta.pk.column)}"
    return RawSQL(  # noqa: S611 - the models' tables and columns only
        f"SELECT COALESCE(SUM({quote(amount.column)}), 0) FROM {quote(notes.db_table)}"  # noqa: S608
        f" WHERE {quote(invoice.column)} = {row}",
        (),
        output_field=MONEY_FIELD,
    )


def unpaid_invoices(*, organization: Organization) -> list[Invoice]:
    """The organization's invoices not paid, oldest due first, each with what credit notes
    took off it (`credited`, as `invoice_list_for_organization` annotates it), in one query:
    plain SQL built once per process (the ORM's took ~0.5 ms to build at every view of the
    billing page); a test compares it with the ORM's."""
    return list(Invoice.objects.raw(_unpaid_sql(), [organization.pk]))


@cache
def _unpaid_sql() -> str:
    quote, meta = connection.ops.quote_name, Invoice._meta
    table = quote(meta.db_table)
    columns = []
    for name in ("organization", "paid_at", "due_at"):
        found = meta.get_field(name)
        assert isinstance(found, Field) and found.column
        columns.append(quote(found.column))
    organization, paid_at, due_at = columns
    credited, _params = _credited_sql().as_sql(None, connection)  # type: ignore[arg-type]
    return (
        f"SELECT {table}.*, ({credited}) AS credited FROM {table}"  # noqa: S608 - the models'
        f" WHERE {table}.{organization} = %s AND {table}.{paid_at} IS NULL"
        f" ORDER BY {table}.{due_at} ASC, {table}.{quote(meta.pk.column)} ASC"
    )


# --- Launches ---------------------------------------------------------------------------------


BILLING_HOLD = "billing"  # the kind of hold launch_block_reason is registered as


def launch_block_possible(organization_id: int) -> tuple[str, list[Any]]:
    """Whether `launch_block_reason` may find a reason, as a boolean SQL expression and its
    parameters: an unpaid invoice past the date that pauses launches, or a hard budget limit.
    Registered as the billing hold's `may_hold` (portal.orgs.standing), so a launch reads it
    with its other reads."""
    paused_before = launches_paused_due_before(clock.now())
    return (
        f"EXISTS (SELECT 1 FROM {table(Invoice)}"  # noqa: S608 - the models' names
        f" WHERE {column(Invoice, 'organization')} = %s"
        f" AND {column(Invoice, 'paid_at')} IS NULL AND {column(Invoice, 'due_at')} < %s)"
        f" OR EXISTS (SELECT 1 FROM {table(Budget)}"
        f" WHERE {column(Budget, 'organization')} = %s AND {column(Budget, 'hard_limit')})",
        [organization_id, paused_before, organization_id],
    )


def launch_block_reason(*, organization: Organization) -> str | None:
    """Why the organization may not launch now, for the person launching; None if it may.

    Two rules (`block_reason_of`): an invoice unpaid BILLING_DUNNING_PAUSE_DAYS past its due
    date, and a hard budget limit reached this month.
    """
    now = clock.now()
    paused_before = launches_paused_due_before(now)
    # Every page asks (the layout's banner): one plain query answers for almost every
    # organization, which has no unpaid invoice past its date and no hard limit.
    sql, params = launch_block_possible(organization.pk)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql}", params)
        (may_hold,) = cursor.fetchone()
    if not may_hold:
        return None
    return block_reason_of(
        overdue=overdue_invoices(organization=organization, now=paused_before).first(),
        budget=Budget.objects.filter(organization=organization).first(),
        spend=lambda: month_spend(organization=organization, month=Month.of(now), now=now),
        now=now,
    )


def block_reason_of(
    *, overdue: Invoice | None, budget: Budget | None, spend: Callable[[], Decimal], now: datetime
) -> str | None:
    """Why launches are refused, from what the caller has read: the oldest invoice overdue long
    enough to pause launches (`launches_paused_due_before`), the budget, and this month's spend
    (asked for only if the budget is a hard limit)."""
    if overdue is not None:
        days = max(1, (now - overdue.due_at).days)
        return (
            f"Launches are paused: invoice {overdue.number} "
            f"({Money(invoice_balance_due(overdue), overdue.currency)}) was due on "
            f"{overdue.due_at:%B} {overdue.due_at.day}, {overdue.due_at.year} and is {days} "
            f"day{'s' if days != 1 else ''} overdue. Invoices are due "
            f"{setting('BILLING_OVERDUE_DAYS')} days after issue; launches resume once it is paid."
        )
    if budget is not None and budget.hard_limit:
        spent = spend()
        if spent >= budget.amount:
            return (
                f"Launches are paused: spend this month ({Money(spent, budget.currency)}) has "
                f"reached the hard budget limit of {budget.money}. An owner, admin or billing "
                "member can raise the budget or turn off the hard limit on the Budget page."
            )
    return None


# --- The billing page -------------------------------------------------------------------------

TOP_INSTANCES = 20  # instances listed on the billing page; the usage CSV has every one


@dataclass
class Overview:
    month: Month
    current: bool
    now: datetime
    currency: str
    lines: list[rating.Line]
    spend: Decimal
    per_day: dict[date, Decimal]
    top_instances: list[rating.InstanceUsage]  # the TOP_INSTANCES most expensive; CSV, API: all
    instance_count: int  # instances with usage in the month
    run_rate: Decimal
    forecast: Decimal | None
    reserved: Decimal  # the month's reservations (this month only), in the forecast
    budget: Budget | None
    budget_percent: int | None
    block_reason: str | None
    balances: dict[str, Decimal]
    open_invoices: list[Invoice]
    month_usage: usage.MonthUsage = field(repr=False)
    chart: BarChart | None = field(repr=False, default=None)  # drawn once the rest is known
    # Preemptible lines (at the average price) and their seconds at each spot price.
    spot_breakdowns: list[tuple[rating.Line, list[tuple[Decimal, int]]]] = field(
        default_factory=list
    )

    @property
    def more_instances(self) -> int:
        return max(0, self.instance_count - len(self.top_instances))

    @property
    def to_pay(self) -> Decimal:
        return sum((invoice_balance_due(invoice) for invoice in self.open_invoices), ZERO)

    @property
    def gpu_hours(self) -> Decimal:
        return sum((Decimal(line.gpu_seconds) for line in self.lines), Decimal(0)) / (
            SECONDS_PER_HOUR
        )


# --- The overview's small reads, in one query ----------------------------------------------


@dataclass(frozen=True)
class _OverviewReads:
    """`billing_overview`'s budget, credit balances and whether a reservation overlaps the
    month, read in one statement (`_overview_reads_sql`)."""

    budget: Budget | None
    balances: dict[str, Decimal]
    reserved: bool  # an accepted reservation in force overlaps the month


@cache
def _overview_reads_sql() -> tuple[str, list[str], list[tuple[int, Col, list]]]:
    """The SQL of `_overview_reads`, from the models' tables and columns, with the budget's
    field names and converters (`from_db`, as the ORM's compiler applies them)."""
    quote = connection.ops.quote_name

    grants, applications = CreditGrant._meta, CreditApplication._meta
    reservations, budgets = Reservation._meta, Budget._meta
    fields = budgets.concrete_fields
    converters = []
    for index, each in enumerate(fields):
        col = each.get_col("b")
        found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if found:
            converters.append((index, col, found))

    def granted(kind: str) -> str:
        return (
            f"(SELECT SUM(g.{column(grants, 'amount')}) FROM {quote(grants.db_table)} g"  # noqa: S608
            f" WHERE g.{column(grants, 'organization')} = %(org)s"
            f" AND g.{column(grants, 'kind')} = '{kind}')"
        )

    def used(kind: str) -> str:
        return (
            f"(SELECT SUM(a.{column(applications, 'amount')})"  # noqa: S608
            f" FROM {quote(applications.db_table)} a JOIN {quote(grants.db_table)} g"
            f" ON g.{quote(grants.pk.column)} = a.{column(applications, 'grant')}"
            f" WHERE g.{column(grants, 'organization')} = %(org)s"
            f" AND g.{column(grants, 'kind')} = '{kind}')"
        )

    kinds = (CreditKind.CREDIT, CreditKind.PREPAID)
    assert all(kind.isidentifier() for kind in kinds)  # quoted into the SQL as they are
    sql = (
        f"SELECT EXISTS(SELECT 1 FROM {quote(reservations.db_table)} r"  # noqa: S608
        f" WHERE r.{column(reservations, 'organization')} = %(org)s"
        f" AND r.{column(reservations, 'cancelled_at')} IS NULL"
        f" AND r.{column(reservations, 'start')} < %(end)s"
        f" AND r.{column(reservations, 'end')} > %(start)s),"
        + ", ".join(granted(kind) + ", " + used(kind) for kind in kinds)
        + ", "
        + ", ".join(f"b.{quote(each.column)}" for each in fields)
        + f" FROM (SELECT 1) one LEFT JOIN {quote(budgets.db_table)} b"
        f" ON b.{column(budgets, 'organization')} = %(org)s"
    )
    return sql, [each.attname for each in fields], converters


def _overview_reads(*, organization: Organization, month: Month) -> _OverviewReads:
    """The budget (`Budget.objects.filter(organization=...).first()`), `credit_balances` and
    whether an accepted reservation overlaps the month (`reservation_lines` has lines only
    then), in one plain SQL statement built once per process: the three through the ORM took
    ~3 ms to build, most of it for a reservations query that finds none for most
    organizations. Read at every view; tests compare them with the ORM's."""
    sql, names, converters = _overview_reads_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, {"org": organization.pk, "start": month.start, "end": month.end})
        row = cursor.fetchone()
    reserved, credit_granted, credit_used, prepaid_granted, prepaid_used = row[:5]
    values = list(row[5:])
    budget = None
    if values[0] is not None:
        for index, col, functions in converters:
            for convert in functions:
                values[index] = convert(values[index], col, connection)
        budget = Budget.from_db(connection.alias, names, values)
    balances: dict[str, Decimal] = {
        CreditKind.CREDIT: (credit_granted or ZERO) - (credit_used or ZERO),
        CreditKind.PREPAID: (prepaid_granted or ZERO) - (prepaid_used or ZERO),
    }
    return _OverviewReads(budget=budget, balances=balances, reserved=bool(reserved))


def billing_overview(*, organization: Organization, month: Month) -> Overview:
    """Everything the billing page shows for one month; a fixed number of queries."""
    now = clock.now()
    current = month == Month.of(now)
    used = usage.month_usage(organization_id=organization.pk, month=month, now=now)
    reads = _overview_reads(organization=organization, month=month)
    lines, per_day, spend = used.lines, used.per_day, used.spend
    run_rate = used.run_rate if current else ZERO
    forecast = None
    reserved = ZERO
    if current:
        remaining_hours = Decimal((month.end - now).total_seconds()) / SECONDS_PER_HOUR
        # Accepted reservations bill every reserved GPU-hour of the month, used or not (less
        # the usage they cover, which is in `spend`): the month's invoice will have them.
        if reads.reserved:  # no reservation overlaps the month: no lines, no query for them
            reserved = sum(
                (
                    line.amount
                    for line in reservation_lines(
                        organization_id=organization.pk,
                        start=month.start,
                        end=month.end,
                        now=month.end,
                    )
                ),
                ZERO,
            )
        forecast = cents(spend + run_rate * remaining_hours + reserved)
    top_instances, instance_count = used.per_instance(limit=TOP_INSTANCES)
    spot_breakdowns = []
    if any(line.averaged for line in lines):
        slices = rating.spot_slices(
            organization_id=organization.pk, start=month.start, end=month.end, now=now
        )
        spot_breakdowns = [
            (line, rating.line_breakdown(line, slices)) for line in lines if line.averaged
        ]
    budget = reads.budget
    budget_percent = None
    if budget is not None:
        budget_percent = int(spend * 100 / budget.amount)
    # Unpaid invoices once: what is left to pay, and the oldest overdue long enough to pause
    # launches.
    unpaid = [
        invoice
        for invoice in unpaid_invoices(organization=organization)
        if invoice_balance_due(invoice) > 0
    ]
    paused_before = launches_paused_due_before(now)
    overdue = next((invoice for invoice in unpaid if invoice.due_at < paused_before), None)

    def spend_this_month() -> Decimal:
        if current:
            return spend
        return month_spend(organization=organization, month=Month.of(now), now=now)

    overview = Overview(
        month=month,
        current=current,
        now=now,
        currency=settings.CURRENCY,
        lines=lines,
        spend=spend,
        per_day=per_day,
        top_instances=top_instances,
        instance_count=instance_count,
        run_rate=run_rate,
        forecast=forecast,
        reserved=reserved,
        budget=budget,
        budget_percent=budget_percent,
        block_reason=block_reason_of(
            overdue=overdue, budget=budget, spend=spend_this_month, now=now
        ),
        balances=reads.balances,
        open_invoices=unpaid,
        spot_breakdowns=spot_breakdowns,
        month_usage=used,
    )
    overview.chart = bar_chart(
        days=month.days(),
        values=per_day,
        today=now.date() if current else None,
        currency=settings.CURRENCY,
    )
    return overview


def billing_recipients(*, organization: Organization) -> list[str]:
    """Who receives invoices and budget e-mails: the owners and the billing members."""
    return sorted(
        set(
            organization.memberships.filter(role__in=[Role.OWNER, Role.BILLING]).values_list(
                "user__email", flat=True
            )
        )
    )


def available_months(
    *,
    organization: Organization,
    now: datetime | None = None,
    used: usage.MonthUsage | None = None,
) -> list[Month]:
    """Months from the first usage of the organization up to this one, newest first (the
    first usage as a month's kept usage has it, given `used`)."""
    now = now or clock.now()
    first = used.first_usage if used is not None else usage.first_usage(organization.pk)
    month = Month.of(now)
    start = Month.of(first) if first else month
    months: list[Month] = []
    while month.start >= start.start and len(months) < 36:
        months.append(month)
        month = month.previous()
    return months


def storage_lines_for_month(*, organization: Organization, month: Month) -> list:
    """The month's volume storage lines (so far, for the current month): one SQL query."""
    now = clock.now()
    return storage_lines(
        organization_id=organization.pk, start=month.start, end=min(month.end, now), now=now
    )
