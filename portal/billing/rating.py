"""Rating: what usage costs, computed by the database in one aggregate query per question.

Every question (lines of a month, spend per day, per instance, the total) is the same
expression: each interval clipped to the period (an open interval runs up to `now`), its
seconds times its hourly unit price, summed with GROUP BY. Nothing loops over intervals in
Python. The exact sum (seconds × price, a NUMERIC) comes back and is divided by 3600 and rounded
to cents once, per invoice line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db.models import (
    BigIntegerField,
    DecimalField,
    ExpressionWrapper,
    F,
    Func,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Greatest, Least, TruncDate

from portal.billing.models import UsageInterval, UsageKind
from portal.billing.money import SECONDS_PER_HOUR, cents
from portal.instances.models import Instance

EXACT = DecimalField(max_digits=30, decimal_places=6)


class EpochSeconds(Func):
    """Whole seconds from `start` to `end` (both timestamps): end - start, as an integer."""

    arity = 2
    output_field = BigIntegerField()

    def as_sql(self, compiler, connection, **extra):  # PostgreSQL and the default
        return self.as_sql_template(
            # date_part is float8 (fast) where EXTRACT is numeric; whole seconds are exact.
            compiler,
            connection,
            "CAST(date_part('epoch', %(end)s - %(start)s) AS BIGINT)",
        )

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql_template(
            compiler,
            connection,
            "CAST(ROUND((julianday(%(end)s) - julianday(%(start)s)) * 86400) AS INTEGER)",
        )

    def as_sql_template(self, compiler, connection, template):
        end_sql, end_params = compiler.compile(self.source_expressions[1])
        start_sql, start_params = compiler.compile(self.source_expressions[0])
        return template % {"end": end_sql, "start": start_sql}, [*end_params, *start_params]


def rated(
    queryset: QuerySet[UsageInterval], *, start: datetime, end: datetime, now: datetime
) -> QuerySet[UsageInterval]:
    """Intervals overlapping [start, end) with `seconds` (clipped) and `price_seconds` annotated.

    An open interval counts up to `now`. The filter keeps exactly the intervals with at least
    a second inside the period (boundaries are whole seconds), so no row rates to zero.
    """
    if now <= start:
        return queryset.none()
    clipped_start = Greatest(F("start"), Value(start))
    clipped_end = Least(Coalesce(F("end"), Value(now)), Value(end))
    # Intervals never cross a UTC midnight, so a closed one inside the period starts at or
    # after the midnight before `start`: a lower bound on `start` that keeps the indexes off
    # older months. Only an open interval (not re-synced since a midnight) may start earlier.
    midnight = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (
        queryset.filter(start__lt=min(end, now))
        .filter(Q(start__gte=midnight) | Q(end__isnull=True))
        .exclude(end__lte=start)
        .annotate(seconds=EpochSeconds(clipped_start, clipped_end))
        .annotate(
            price_seconds=ExpressionWrapper(
                Cast(F("seconds"), EXACT) * F("unit_price"), output_field=EXACT
            ),
            gpu_seconds=ExpressionWrapper(F("seconds") * F("gpus"), output_field=BigIntegerField()),
        )
    )


def _per_price() -> ExpressionWrapper:
    """Σ seconds × the unit price, for a GROUP BY that includes the unit price: one
    multiplication per group instead of one per interval (the same exact NUMERIC)."""
    return ExpressionWrapper(Cast(Sum("seconds"), EXACT) * F("unit_price"), output_field=EXACT)


def _amount(price_seconds: Decimal | None) -> Decimal:
    """The exact amount of `price_seconds` (unit price × seconds), not yet rounded."""
    return (price_seconds or Decimal(0)) / SECONDS_PER_HOUR


@dataclass(frozen=True)
class Line:
    instance_type_id: int
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

    @property
    def kind_label(self) -> str:
        return UsageKind(self.kind).label

    @property
    def description(self) -> str:
        return f"{self.instance_type_name} · {self.region_code} · {self.kind_label}"

    @property
    def hours(self) -> Decimal:
        return Decimal(self.seconds) / SECONDS_PER_HOUR

    @property
    def gpu_hours(self) -> Decimal:
        return Decimal(self.gpu_seconds) / SECONDS_PER_HOUR


KIND_ORDER = {UsageKind.ON_DEMAND: 0, UsageKind.PREEMPTIBLE: 1, UsageKind.STOPPED: 2}


LINE_FIELDS = (
    "instance_type_id",
    "instance_type__name",
    "instance_type__code",
    "region_id",
    "region__code",
    "kind",
    "unit_price",
    "currency",
)


def _of_organization(organization_id: int, where: Q | None) -> QuerySet[UsageInterval]:
    queryset = UsageInterval.objects.filter(organization_id=organization_id)
    return queryset.filter(where) if where is not None else queryset


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
    rows = rated(_of_organization(organization_id, where), start=start, end=end, now=now)
    fields = LINE_FIELDS
    if by_day:
        rows = rows.annotate(day=TruncDate("start"))
        fields = ("day", *LINE_FIELDS)
    return (
        rows.values(*fields)
        .annotate(
            total_seconds=Sum("seconds"),
            total_gpu_seconds=Sum("gpu_seconds"),
            total_price_seconds=_per_price(),
            first_start=Min("start"),
        )
        .order_by()
    )


def _line(row: dict) -> Line:
    return Line(
        instance_type_id=row["instance_type_id"],
        instance_type_name=row["instance_type__name"],
        instance_type_code=row["instance_type__code"],
        region_id=row["region_id"],
        region_code=row["region__code"],
        kind=row["kind"],
        unit_price=row["unit_price"],
        currency=row["currency"],
        seconds=int(row["total_seconds"]),
        gpu_seconds=int(row["total_gpu_seconds"] or 0) if row["kind"] != "stopped" else 0,
        amount=cents(_amount(row["total_price_seconds"])),
        first_start=row["first_start"],
    )


def _in_invoice_order(lines_: list[Line]) -> list[Line]:
    return sorted(
        lines_,
        key=lambda line: (
            line.instance_type_name,
            line.region_code,
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
    per_day_ = {day: cents(_amount(days[day])) for day in sorted(days)}
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
    return {row["day"]: cents(_amount(row["total_price_seconds"])) for row in rows}


@dataclass(frozen=True)
class InstanceUsage:
    instance_id: int
    name: str
    state: str
    instance_type_name: str
    region_code: str
    preemptible: bool
    running_seconds: int
    stopped_seconds: int
    amount: Decimal

    @property
    def running_hours(self) -> Decimal:
        return Decimal(self.running_seconds) / SECONDS_PER_HOUR

    @property
    def stopped_hours(self) -> Decimal:
        return Decimal(self.stopped_seconds) / SECONDS_PER_HOUR


# The raw sums of one instance over a period (or a part of one), addable across parts:
# (instance id, running seconds, stopped seconds, exact Σ seconds × unit price). Plain tuples:
# a month of a large organization has a thousand of them, kept in the cache.
InstanceSums = tuple[int, int, int, Decimal]


def instance_sums(
    *, organization_id: int, start: datetime, end: datetime, now: datetime, where: Q | None = None
) -> list[InstanceSums]:
    """One GROUP BY instance over the period's rated intervals (narrowed by `where`)."""
    return list(
        rated(_of_organization(organization_id, where), start=start, end=end, now=now)
        .values("instance_id")
        .annotate(
            running=Coalesce(Sum("seconds", filter=~Q(kind=UsageKind.STOPPED)), 0),
            stopped=Coalesce(Sum("seconds", filter=Q(kind=UsageKind.STOPPED)), 0),
            price_seconds_sum=Coalesce(Sum("price_seconds"), Value(Decimal(0)), output_field=EXACT),
        )
        .order_by()
        .values_list("instance_id", "running", "stopped", "price_seconds_sum")
    )


def per_instance_of(
    sums: Iterable[InstanceSums], *, limit: int | None = None
) -> tuple[list[InstanceUsage], int]:
    """Usage of each instance from its sums (of one scan or several parts, added up), most
    expensive first (then by name), and how many instances there are in all.

    With `limit`, only the first `limit` are described (names, states and types: one query);
    the ranking stays exact: instances tied with the last one by amount are read too and
    ordered by name before the cut.
    """
    added: dict[int, list] = {}
    for instance_id, running, stopped, price_seconds in sums:
        found = added.get(instance_id)
        if found is None:
            added[instance_id] = [int(running), int(stopped), price_seconds]
        else:
            found[0] += int(running)
            found[1] += int(stopped)
            found[2] += price_seconds
    wanted = list(added)
    if limit is not None and len(added) > limit:
        ranked = sorted(added, key=lambda instance_id: added[instance_id][2], reverse=True)
        wanted = ranked[:limit]
        if wanted:
            last = added[wanted[-1]][2]
            wanted += [i for i in ranked[limit:] if added[i][2] == last]
    described = {
        row[0]: row
        for row in Instance.objects.filter(pk__in=wanted).values_list(
            "id", "name", "state", "preemptible", "instance_type__name", "region__code"
        )
    }
    usages = []
    for instance_id in wanted:
        if instance_id not in described:
            continue
        _, name, state, preemptible, type_name, region_code = described[instance_id]
        running, stopped, price_seconds = added[instance_id]
        usages.append(
            InstanceUsage(
                instance_id=instance_id,
                name=name,
                state=state,
                instance_type_name=type_name,
                region_code=region_code,
                preemptible=preemptible,
                running_seconds=running,
                stopped_seconds=stopped,
                amount=cents(_amount(price_seconds)),
            )
        )
    usages.sort(key=lambda usage: (-added[usage.instance_id][2], usage.name))
    return (usages[:limit] if limit is not None else usages), len(added)


def per_instance(
    *, organization_id: int, start: datetime, end: datetime, now: datetime
) -> list[InstanceUsage]:
    """Usage of each instance in [start, end), most expensive first."""
    usages, _ = per_instance_of(
        instance_sums(organization_id=organization_id, start=start, end=end, now=now)
    )
    return usages


# --- Open intervals, rated in memory -------------------------------------------------------
#
# An open interval is the one part of usage that changes with the clock alone: it counts up to
# `now`. `portal.billing.usage` keeps an organization's open intervals between views (until
# metering writes) and rates them here, by `rated()`'s rule, instead of asking the database
# on every view. tests/billing/test_usage.py compares the two.

OPEN_FIELDS = ("instance_id", *LINE_FIELDS, "gpus", "start")
UNIT_PRICE, KIND = LINE_FIELDS.index("unit_price"), LINE_FIELDS.index("kind")


def open_interval_rows(*, organization_id: int, before: datetime) -> list[tuple]:
    """The organization's open intervals that start before `before` (a month's end)."""
    return list(
        UsageInterval.objects.filter(
            organization_id=organization_id, end__isnull=True, start__lt=before
        ).values_list(*OPEN_FIELDS)
    )


def epoch_seconds(start: datetime, end: datetime) -> int:
    """`EpochSeconds` in Python: the seconds from start to end as a float, rounded half to
    even, as PostgreSQL casts date_part('epoch', …) to a bigint."""
    return round((end - start) / timedelta(microseconds=1) / 1_000_000)


def rate_open(
    rows: Iterable[tuple], *, start: datetime, end: datetime, now: datetime
) -> tuple[list[dict], list[InstanceSums]]:
    """Open intervals (`open_interval_rows`) over [start, end) at `now`, each clipped to the
    period and counted up to `now`: a row each as `line_day_rows` gives them (for
    `lines_and_per_day_of` to add up) and its `InstanceSums`."""
    line_days: list[dict] = []
    instances: list[InstanceSums] = []
    until = min(end, now)
    if until <= start:
        return line_days, instances
    for instance_id, *line, gpus, began in rows:  # line: the LINE_FIELDS, in their order
        if began >= until:  # rated(): an interval still to come
            continue
        seconds = epoch_seconds(max(began, start), until)
        price_seconds = seconds * line[UNIT_PRICE]
        line_days.append(
            {
                "day": began.astimezone(UTC).date(),
                **dict(zip(LINE_FIELDS, line, strict=True)),
                "total_seconds": seconds,
                "total_gpu_seconds": seconds * gpus,
                "total_price_seconds": price_seconds,
                "first_start": began,
            }
        )
        stopped = line[KIND] == UsageKind.STOPPED
        instances.append(
            (instance_id, 0 if stopped else seconds, seconds if stopped else 0, price_seconds)
        )
    return line_days, instances


def hourly_run_rate(*, organization_id: int, now: datetime) -> Decimal:
    """What the organization's instances cost per hour right now (the open intervals)."""
    value = UsageInterval.objects.filter(
        organization_id=organization_id, end__isnull=True, start__lte=now
    ).aggregate(rate=Sum("unit_price"))["rate"]
    return value or Decimal("0")


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
            total_price_seconds=_per_price(),
        )
        .order_by()
    )
