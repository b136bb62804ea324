"""Invoice lines, spend per day and the month's total: one GROUP BY over `rated()`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from django.db.models import (
    Min,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.functions import TruncDate

from portal.billing.models import UsageInterval, UsageKind
from portal.billing.money import SECONDS_PER_HOUR, cents
from portal.billing.rating.intervals import exact_amount, of_organization, per_price, rated

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Line:
    instance_type_id: int | None  # None: a line of volume storage (portal.billing.storage)
    instance_type_name: str
    instance_type_code: str
    region_id: int
    region_code: str
    kind: str
    unit_price: Decimal
    currency: str
    seconds: int
    gpu_seconds: int
    amount: Decimal  # rounded to cents, half up: the one rounding
    first_start: datetime | None = None  # when this line's usage began, for ordering
    # Preemptible lines: `unit_price` is the average price paid (the spot price moved);
    # `base_price` the intervals' own (catalog) price, which seconds before the market priced
    # the offer are at.
    averaged: bool = False
    base_price: Decimal | None = None
    cluster: bool = False  # the nodes of clusters, a line of their own per type and region

    @property
    def kind_label(self) -> str:
        return UsageKind(self.kind).label

    @property
    def description(self) -> str:
        what = f"{self.instance_type_name} · {self.region_code} · {self.kind_label}"
        return f"Cluster nodes · {what}" if self.cluster else what

    @property
    def hours(self) -> Decimal:
        return Decimal(self.seconds) / SECONDS_PER_HOUR

    @property
    def gpu_hours(self) -> Decimal:
        return Decimal(self.gpu_seconds) / SECONDS_PER_HOUR


KIND_ORDER: dict[str, int] = {
    UsageKind.ON_DEMAND: 0,
    UsageKind.PREEMPTIBLE: 1,
    UsageKind.STOPPED: 2,
}


LINE_FIELDS = (
    "instance_type_id",
    "instance_type__name",
    "instance_type__code",
    "region_id",
    "region__code",
    "kind",
    "unit_price",
    "currency",
    "cluster",
)


def _line_rows(
    *,
    organization_id: int,
    start: datetime,
    end: datetime,
    now: datetime,
    by_day: bool,
    where: Q | None = None,
):
    """One GROUP BY over the period's rated intervals: per invoice line (and per UTC day).

    `where` narrows the intervals (`portal.billing.usage` rates a month in two parts)."""
    rows = rated(of_organization(organization_id, where), start=start, end=end, now=now)
    fields: tuple[str, ...] = LINE_FIELDS
    if by_day:
        rows = rows.annotate(day=TruncDate("start"))
        fields = ("day", *LINE_FIELDS)
    return (
        rows.values(*fields)
        .annotate(
            total_seconds=Sum("seconds"),
            total_gpu_seconds=Sum("gpu_seconds"),
            total_price_seconds=per_price(),
            first_start=Min("start"),
        )
        .order_by()
    )


def average_price(price_seconds: Decimal | None, seconds: int) -> Decimal:
    """The average price per hour of `seconds` that cost `price_seconds` (to 4 places)."""
    if not seconds:
        return Decimal("0.0000")
    return (Decimal(price_seconds or 0) / Decimal(seconds)).quantize(
        Decimal("0.0001"), rounding=ROUND_HALF_UP
    )


def _line(row: dict) -> Line:
    averaged = row["kind"] == UsageKind.PREEMPTIBLE
    return Line(
        instance_type_id=row["instance_type_id"],
        instance_type_name=row["instance_type__name"],
        instance_type_code=row["instance_type__code"],
        region_id=row["region_id"],
        region_code=row["region__code"],
        kind=row["kind"],
        unit_price=(
            average_price(row["total_price_seconds"], int(row["total_seconds"]))
            if averaged
            else row["unit_price"]
        ),
        currency=row["currency"],
        seconds=int(row["total_seconds"]),
        gpu_seconds=int(row["total_gpu_seconds"] or 0) if row["kind"] != "stopped" else 0,
        amount=cents(exact_amount(row["total_price_seconds"])),
        first_start=row["first_start"],
        averaged=averaged,
        base_price=row["unit_price"],
        cluster=bool(row.get("cluster")),
    )


def _in_invoice_order(lines_: list[Line]) -> list[Line]:
    return sorted(
        lines_,
        key=lambda line: (
            line.instance_type_name,
            line.region_code,
            line.cluster,
            KIND_ORDER.get(line.kind, 9),
            line.first_start,
            line.unit_price,
        ),
    )


def lines(*, organization_id: int, start: datetime, end: datetime, now: datetime) -> list[Line]:
    """Usage of [start, end) per instance type, region, kind and unit price: invoice lines."""
    rows = _line_rows(organization_id=organization_id, start=start, end=end, now=now, by_day=False)
    return _in_invoice_order([_line(row) for row in rows])


def line_day_rows(
    *, organization_id: int, start: datetime, end: datetime, now: datetime, where: Q | None = None
) -> list[dict]:
    """The raw sums of [start, end) per UTC day and invoice line: the input of
    `lines_and_per_day_of`, which rows of several parts of a period may be added into."""
    return list(
        _line_rows(
            organization_id=organization_id,
            start=start,
            end=end,
            now=now,
            by_day=True,
            where=where,
        )
    )


def lines_and_per_day_of(rows: Iterable[dict]) -> tuple[list[Line], dict[date, Decimal]]:
    """Invoice lines and spend per day from `line_day_rows` (of one scan or several parts).

    Seconds and the exact Σ seconds × price are added up per line and per day in Python (exact
    Decimal sums of exact NUMERICs), so each line and each day is rounded once, as in `lines()`
    and `per_day()`.
    """
    groups: dict[tuple, dict] = {}
    days: dict[date, Decimal] = {}
    for row in rows:
        price_seconds = row["total_price_seconds"] or Decimal(0)
        days[row["day"]] = days.get(row["day"], Decimal(0)) + price_seconds
        key = (
            row["instance_type_id"],
            row["region_id"],
            row["kind"],
            row["unit_price"],
            row["currency"],
            bool(row.get("cluster")),
        )
        group = groups.get(key)
        if group is None:
            groups[key] = {
                **row,
                "total_seconds": int(row["total_seconds"]),
                "total_gpu_seconds": int(row["total_gpu_seconds"] or 0),
                "total_price_seconds": price_seconds,
            }
            continue
        group["total_seconds"] += int(row["total_seconds"])
        group["total_gpu_seconds"] += int(row["total_gpu_seconds"] or 0)
        group["total_price_seconds"] += price_seconds
        group["first_start"] = min(group["first_start"], row["first_start"])
    result = _in_invoice_order([_line(group) for group in groups.values()])
    per_day_ = {day: cents(exact_amount(days[day])) for day in sorted(days)}
    return result, per_day_


def lines_and_per_day(
    *, organization_id: int, start: datetime, end: datetime, now: datetime
) -> tuple[list[Line], dict[date, Decimal]]:
    """`lines()` and `per_day()` of [start, end) from one scan of the intervals (one GROUP BY
    per UTC day and line: a few rows per day)."""
    return lines_and_per_day_of(
        line_day_rows(organization_id=organization_id, start=start, end=end, now=now)
    )


def total(lines_: Iterable[Line]) -> Decimal:
    return sum((line.amount for line in lines_), Decimal("0.00"))


def per_day(
    *, organization_id: int, start: datetime, end: datetime, now: datetime
) -> dict[date, Decimal]:
    """Spend per UTC day (intervals never cross a midnight, so their start day is theirs)."""
    rows = (
        rated(
            UsageInterval.objects.filter(organization_id=organization_id),
            start=start,
            end=end,
            now=now,
        )
        .annotate(day=TruncDate("start"))
        .values("day")
        .annotate(total_price_seconds=Sum("price_seconds"))
        .order_by("day")
    )
    return {row["day"]: cents(exact_amount(row["total_price_seconds"])) for row in rows}


def all_organizations(*, start: datetime, end: datetime, now: datetime) -> QuerySet:
    """Lines of every organization at once (GROUP BY organization too): the benchmark's query."""
    return (
        rated(UsageInterval.objects.all(), start=start, end=end, now=now)
        .values(
            "organization_id", "instance_type_id", "region_id", "kind", "unit_price", "currency"
        )
        .annotate(
            total_seconds=Sum("seconds"),
            total_gpu_seconds=Sum("gpu_seconds"),
            total_price_seconds=per_price(),
        )
        .order_by()
    )
