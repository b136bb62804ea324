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
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, TypedDict, cast

from django.db.models import (
    BigIntegerField,
    Case,
    DecimalField,
    Expression,
    ExpressionWrapper,
    F,
    Func,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Cast, Coalesce, Greatest, Least, TruncDate

from portal.billing import periods
from portal.billing.models import UsageInterval, UsageKind
from portal.billing.money import SECONDS_PER_HOUR, cents
from portal.instances.models import Instance
from portal.market.models import SpotPrice

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

EXACT: DecimalField[Decimal, Decimal] = DecimalField(max_digits=30, decimal_places=6)


class EpochSeconds(Func):
    """Whole seconds from `start` to `end` (both timestamps): end - start, as an integer."""

    arity = 2
    output_field = BigIntegerField()

    def as_sql(  # PostgreSQL and the default
        self, compiler, connection, function=None, template=None, arg_joiner=None, **extra
    ):
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


class RatedFields(TypedDict):
    """What rated() annotates on each interval."""

    seconds: int  # inside the period (clipped), up to `now` for an open one
    price_seconds: Decimal  # seconds × price (divide by 3600 for the amount)
    gpu_seconds: int
    # The same split by how a group sums it (`_per_price`): `plain_seconds` of an interval at
    # its unit price (0 for others), `apart_price_seconds` of one that is not (None for others).
    plain_seconds: int
    apart_price_seconds: Decimal | None


def _spot_integral(at: Func | OuterRef) -> Coalesce:
    """For a preemptible interval (the outer row): Σ over the seconds its offer's spot prices
    cover before `at` (an expression of the outer row) of (spot price − the interval's unit
    price). Zero before the offer's first price.

    One row answers it: the offer's last price row starting at or before `at` (an index
    lookup on type, region, start) carries the sums of the history before it
    (`SpotPrice.seconds_before`, `price_seconds_before`), to which its own seconds up to `at`
    are added (all of them if it ended before `at`: a gap in the history is at the interval's
    own price). Rows start and end on whole seconds.
    """
    unit_price = OuterRef("unit_price")
    own_seconds = Cast(
        EpochSeconds(F("valid_from"), Least(at, Coalesce(F("valid_until"), at))), EXACT
    )
    in_force = (
        SpotPrice.objects.filter(
            region_id=OuterRef("region_id"),
            instance_type_id=OuterRef("instance_type_id"),
            valid_from__lte=at,
        )
        .order_by("-valid_from")
        .annotate(
            integral=ExpressionWrapper(
                F("price_seconds_before")
                - unit_price * F("seconds_before")
                + (F("price") - unit_price) * own_seconds,
                output_field=EXACT,
            )
        )
        .values("integral")[:1]
    )
    return Coalesce(Subquery(in_force, output_field=EXACT), Value(Decimal(0)), output_field=EXACT)


def _spot_price_seconds(*, start: datetime, end: datetime, now: datetime) -> CombinedExpression:
    """For a preemptible interval (the outer row): Σ over the spot prices in force during its
    clipped part of (seconds of overlap × (spot price − the interval's unit price)).

    Added to seconds × unit price, the seconds a spot price covers are rated at that price and
    the others (before the market first priced the offer) at the catalog's preemptible price
    the interval carries. The difference of the offer's price integral at the clipped end and
    at the clipped start: two index lookups per interval, however many changes it spans.
    """
    # The outer interval clipped as `rated()` clips it.
    outer_start = Greatest(OuterRef("start"), Value(start))
    outer_end = Least(Coalesce(OuterRef("end"), Value(now)), Value(end))
    return _spot_integral(outer_end) - _spot_integral(outer_start)


def sealed_price_seconds_whole() -> CombinedExpression:
    """`price_seconds` of the interval whole (closed, not clipped) at the spot prices in force:
    what `portal.billing.sealing` seals into `UsageInterval.sealed_price_seconds`."""
    whole = Cast(EpochSeconds(F("start"), F("end")), EXACT) * F("unit_price")
    return whole + _spot_integral(OuterRef("end")) - _spot_integral(OuterRef("start"))


def _spot_lookups_needed(*, start: datetime, upper: datetime, midnight: datetime) -> bool:
    """Whether some preemptible interval `rated()` rates over [start, upper) cannot be rated
    from its sealed spot sum: one not sealed (open, mostly), or a sealed one the period clips.
    Two index probes; True keeps the lookups (and so one process) for the query."""
    preemptible = UsageInterval.objects.filter(kind=UsageKind.PREEMPTIBLE, start__lt=upper)
    unsealed = (
        preemptible.filter(sealed_price_seconds__isnull=True)
        .filter(Q(start__gte=midnight) | Q(end__isnull=True))
        .exclude(end__lte=start)
    )
    # In start order: the planner reads the partial index `usage_spot_unsealed` (it cannot
    # know that almost no preemptible interval is unsealed, and would scan the table).
    if unsealed.order_by("start").values_list("pk", flat=True).first() is not None:
        return True
    # Closed intervals never cross a UTC midnight: one the period clips starts after the
    # midnight before the clipping boundary.
    clipped = preemptible.filter(
        Q(start__gte=midnight, start__lt=start, end__gt=start)
        | Q(start__gte=periods.midnight(upper), end__gt=upper)
    )
    return clipped.exists()


def _market_priced_before(moment: datetime) -> bool:
    """Whether the spot market had priced any offer before `moment`. If not (a period before
    the market started, or no market at all), no second of the period is at a spot price and
    `rated()` leaves the lookups out: PostgreSQL runs the plain query in parallel, while the
    correlated lookups keep the whole query to one process. An index lookup."""
    return SpotPrice.objects.filter(valid_from__lt=moment).exists()


def rated(
    queryset: QuerySet[UsageInterval],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    at_spot_prices: bool | None = None,
) -> QuerySet[WithAnnotations[UsageInterval, RatedFields]]:
    """Intervals overlapping [start, end) with `seconds` (clipped) and `price_seconds` annotated.

    An open interval counts up to `now`. The filter keeps exactly the intervals with at least
    a second inside the period (boundaries are whole seconds), so no row rates to zero.
    Preemptible intervals are rated at the spot price in force during each of their seconds:
    from the sum sealed into a closed one (`portal.billing.sealing`) when the period holds it
    whole, else by looking the prices up (`_spot_price_seconds`); the others at their unit
    price. `at_spot_prices=False` leaves the spot prices out of `price_seconds` (for a caller
    that does not read it); None looks whether the market had priced anything before the
    period's end.
    """
    if now <= start:  # nothing to rate: no rows, so none with the annotations missing
        return cast("QuerySet[WithAnnotations[UsageInterval, RatedFields]]", queryset.none())
    clipped_start = Greatest(F("start"), Value(start))
    clipped_end = Least(Coalesce(F("end"), Value(now)), Value(end))
    # Intervals never cross a UTC midnight, so a closed one inside the period starts at or
    # after the midnight before `start`: a lower bound on `start` that keeps the indexes off
    # older months. Only an open interval (not re-synced since a midnight) may start earlier.
    midnight = periods.midnight(start)
    at_unit_price = Cast(F("seconds"), EXACT) * F("unit_price")
    # Intervals rated apart from their unit price (preemptible ones at spot prices): their
    # price_seconds, None for the others; and the seconds of those others.
    apart: Expression | F = Cast(Value(None), EXACT)
    plain_seconds: Expression | F = F("seconds")
    if at_spot_prices is None:
        at_spot_prices = _market_priced_before(min(end, now))
    if at_spot_prices:
        upper = min(end, now)
        if _spot_lookups_needed(start=start, upper=upper, midnight=midnight):
            apart = Case(
                When(
                    Q(sealed_price_seconds__isnull=False, start__gte=start, end__lte=upper),
                    then=F("sealed_price_seconds"),
                ),
                When(
                    kind=UsageKind.PREEMPTIBLE,
                    then=at_unit_price + _spot_price_seconds(start=start, end=end, now=now),
                ),
                default=None,
                output_field=EXACT,
            )
            plain_seconds = Case(
                When(kind=UsageKind.PREEMPTIBLE, then=Value(0)),
                default=F("seconds"),
                output_field=BigIntegerField(),
            )
        else:  # every preemptible interval here is sealed whole, and no other kind is
            apart = F("sealed_price_seconds")
            plain_seconds = Case(
                When(sealed_price_seconds__isnull=True, then=F("seconds")),
                default=Value(0),
                output_field=BigIntegerField(),
            )
    price_seconds = Coalesce(apart, at_unit_price) if at_spot_prices else at_unit_price
    return (
        queryset.filter(start__lt=min(end, now))
        .filter(Q(start__gte=midnight) | Q(end__isnull=True))
        .exclude(end__lte=start)
        .annotate(seconds=EpochSeconds(clipped_start, clipped_end))
        .annotate(
            price_seconds=ExpressionWrapper(price_seconds, output_field=EXACT),
            gpu_seconds=ExpressionWrapper(F("seconds") * F("gpus"), output_field=BigIntegerField()),
            plain_seconds=ExpressionWrapper(plain_seconds, output_field=BigIntegerField()),
            apart_price_seconds=ExpressionWrapper(apart, output_field=EXACT),
        )
    )


def _per_price() -> ExpressionWrapper:
    """Σ seconds × price per group of a GROUP BY that includes the unit price: the seconds at
    the unit price summed and multiplied once per group, plus the sum of what is rated apart
    (preemptible usage at spot prices, mostly sealed). The exact NUMERIC of `rated()`."""
    return ExpressionWrapper(
        Cast(Sum("plain_seconds"), EXACT) * F("unit_price")
        + Coalesce(Sum("apart_price_seconds"), Value(Decimal(0)), output_field=EXACT),
        output_field=EXACT,
    )


def _amount(price_seconds: Decimal | None) -> Decimal:
    """The exact amount of `price_seconds` (unit price × seconds), not yet rounded."""
    return (price_seconds or Decimal(0)) / SECONDS_PER_HOUR


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
    fields: tuple[str, ...] = LINE_FIELDS
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
        amount=cents(_amount(row["total_price_seconds"])),
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


# A spot price row as `rate_open` reads it (`spot_rows_for_open`).
SPOT_FIELDS = (
    "region_id",
    "instance_type_id",
    "valid_from",
    "valid_until",
    "price",
    "seconds_before",
    "price_seconds_before",
)
SpotRows = dict[tuple[int, int], list[tuple]]  # (region id, type id) -> rows by valid_from
REGION_ID, TYPE_ID = LINE_FIELDS.index("region_id"), LINE_FIELDS.index("instance_type_id")


def spot_rows_for_open(rows: Iterable[tuple], *, start: datetime) -> SpotRows:
    """The spot price rows `rate_open` needs for the preemptible ones among open intervals
    (`open_interval_rows`) rated over a period from `start`: each offer's rows in force at or
    after the earliest of their clipped starts. One query; none without such intervals."""
    preemptible = [row for row in rows if row[1 + KIND] == UsageKind.PREEMPTIBLE]
    if not preemptible:
        return {}
    since = min(max(row[-1], start) for row in preemptible)
    offers = Q()
    for region_id, type_id in {(row[1 + REGION_ID], row[1 + TYPE_ID]) for row in preemptible}:
        offers |= Q(region_id=region_id, instance_type_id=type_id)
    found: SpotRows = {}
    for spot in (
        SpotPrice.objects.filter(offers)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=since))
        .order_by("valid_from")
        .values_list(*SPOT_FIELDS)
    ):
        found.setdefault((spot[0], spot[1]), []).append(spot[2:])
    return found


def _spot_integral_at(rows: list[tuple], unit_price: Decimal, at: datetime) -> Decimal:
    """`_spot_integral` in Python, for an `at` no earlier than the start `rows` were read
    from (`spot_rows_for_open`): the offer's last row starting at or before `at` carries the
    sums before it, to which its own seconds up to `at` are added. Before such a row, the
    next row's sums before it are the same figure (zero before the offer's first price).
    Without rows the figure is the same at every `at` of the interval: zero will do."""
    following = None
    covering = None
    for row in rows:
        if row[0] <= at:
            covering = row
        else:
            following = row
            break
    if covering is not None:
        valid_from, valid_until, price, seconds_before, price_seconds_before = covering
        own = epoch_seconds(valid_from, min(at, valid_until) if valid_until else at)
        return price_seconds_before - unit_price * seconds_before + (price - unit_price) * own
    if following is not None:
        return following[4] - unit_price * following[3]
    return Decimal(0)


def spot_price_at(rows: list[tuple], at: datetime) -> Decimal | None:
    """The spot price in force at `at` among an offer's rows (`spot_rows_for_open`)."""
    for valid_from, valid_until, price, *_ in rows:
        if valid_from <= at and (valid_until is None or valid_until > at):
            return price
    return None


def rate_open(
    rows: Iterable[tuple],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    spot: SpotRows | None = None,
) -> tuple[list[dict], list[InstanceSums]]:
    """Open intervals (`open_interval_rows`) over [start, end) at `now`, each clipped to the
    period and counted up to `now`: their rows per UTC day and line as `line_day_rows` gives
    them (for `lines_and_per_day_of` to add up) and each one's `InstanceSums`. A preemptible
    one is at the spot prices in force (`spot`, from `spot_rows_for_open`) as `rated()` rates
    it."""
    line_days: dict[tuple, dict] = {}
    instances: list[InstanceSums] = []
    until = min(end, now)
    if until <= start:
        return [], instances
    for instance_id, *line, gpus, began in rows:  # line: the LINE_FIELDS, in their order
        if began >= until:  # rated(): an interval still to come
            continue
        clipped_start = max(began, start)
        seconds = epoch_seconds(clipped_start, until)
        price_seconds = seconds * line[UNIT_PRICE]
        offer_rows = spot.get((line[REGION_ID], line[TYPE_ID])) if spot else None
        if offer_rows and line[KIND] == UsageKind.PREEMPTIBLE:
            unit_price = line[UNIT_PRICE]
            price_seconds += _spot_integral_at(offer_rows, unit_price, until) - _spot_integral_at(
                offer_rows, unit_price, clipped_start
            )
        day = began.astimezone(UTC).date()
        group = line_days.get((day, *line))
        if group is None:  # a thousand open intervals make a few dozen of these
            line_days[(day, *line)] = {
                "day": day,
                **dict(zip(LINE_FIELDS, line, strict=True)),
                "total_seconds": seconds,
                "total_gpu_seconds": seconds * gpus,
                "total_price_seconds": price_seconds,
                "first_start": began,
            }
        else:
            group["total_seconds"] += seconds
            group["total_gpu_seconds"] += seconds * gpus
            group["total_price_seconds"] += price_seconds
            group["first_start"] = min(group["first_start"], began)
        stopped = line[KIND] == UsageKind.STOPPED
        instances.append(
            (instance_id, 0 if stopped else seconds, seconds if stopped else 0, price_seconds)
        )
    return list(line_days.values()), instances


def hourly_run_rate(*, organization_id: int, now: datetime) -> Decimal:
    """What the organization's instances cost per hour right now (the open intervals; a
    preemptible one at the spot price in force)."""
    spot_now = (
        SpotPrice.objects.filter(
            region_id=OuterRef("region_id"),
            instance_type_id=OuterRef("instance_type_id"),
            valid_from__lte=now,
        )
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=now))
        .values("price")[:1]
    )
    value = UsageInterval.objects.filter(
        organization_id=organization_id, end__isnull=True, start__lte=now
    ).aggregate(
        rate=Sum(
            Case(
                When(
                    kind=UsageKind.PREEMPTIBLE,
                    then=Coalesce(Subquery(spot_now, output_field=EXACT), F("unit_price")),
                ),
                default=F("unit_price"),
                output_field=EXACT,
            )
        )
    )["rate"]
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


# --- Preemptible usage at each spot price ---------------------------------------------------


@dataclass(frozen=True)
class SpotSlice:
    """The seconds of one preemptible interval (clipped to the period) at one spot price."""

    interval_id: int
    instance_type_id: int
    region_id: int
    base_price: Decimal  # the interval's own unit price (the catalog's preemptible price)
    price: Decimal
    seconds: int


def spot_slices(
    *, organization_id: int, start: datetime, end: datetime, now: datetime, where: Q | None = None
) -> list[SpotSlice]:
    """Preemptible usage of [start, end) at each spot price: one query joining the usage
    intervals with the price rows of their offer (overlaps of at least a second), in time
    order. Seconds no spot price covers (before the market first priced the offer) are not
    here: they are at the interval's own unit price (`spot_breakdown` adds them)."""
    if not _market_priced_before(min(end, now)):
        return []  # no price row starts before the period's end: none overlaps it
    intervals = rated(
        _of_organization(organization_id, where).filter(kind=UsageKind.PREEMPTIBLE),
        start=start,
        end=end,
        now=now,
        at_spot_prices=False,  # its `price_seconds` is not read here
    )
    clipped_start = Greatest(F("start"), Value(start))
    clipped_end = Least(Coalesce(F("end"), Value(now)), Value(end))
    # One filter() call: one join of the price rows, that every condition applies to.
    joined = intervals.filter(
        Q(instance_type__spot_prices__valid_until__isnull=True)
        | Q(instance_type__spot_prices__valid_until__gt=clipped_start),
        instance_type__spot_prices__region_id=F("region_id"),
        instance_type__spot_prices__valid_from__lt=clipped_end,
    )
    overlap = EpochSeconds(
        Greatest(F("instance_type__spot_prices__valid_from"), clipped_start),
        Least(Coalesce(F("instance_type__spot_prices__valid_until"), clipped_end), clipped_end),
    )
    rows = (
        joined.annotate(spot_price=F("instance_type__spot_prices__price"), overlap=overlap)
        .values_list("id", "instance_type_id", "region_id", "unit_price", "spot_price", "overlap")
        .order_by("start", "instance_type__spot_prices__valid_from")
    )
    return [SpotSlice(*row) for row in rows if row[-1] > 0]


def interval_breakdown(
    slices: Iterable[SpotSlice], intervals: dict[int, tuple[int, Decimal]]
) -> dict[int, list[tuple[Decimal, int]]]:
    """Per preemptible interval (`intervals`: id -> its rated seconds and own unit price), the
    seconds at each price, lowest price first: the spot prices of `slices`, and the seconds
    no spot price covers at the interval's own price. The seconds add up to the interval's."""
    covered: dict[int, dict[Decimal, int]] = {}
    for piece in slices:
        prices = covered.setdefault(piece.interval_id, {})
        prices[piece.price] = prices.get(piece.price, 0) + piece.seconds
    result = {}
    for interval_id, (seconds, own_price) in intervals.items():
        prices = covered.get(interval_id, {})
        rest = seconds - sum(prices.values())
        if rest > 0:
            prices[own_price] = prices.get(own_price, 0) + rest
        result[interval_id] = sorted(prices.items())
    return result


def line_breakdown(line: Line, slices: Iterable[SpotSlice]) -> list[tuple[Decimal, int]]:
    """A preemptible invoice line's seconds at each price (lowest first): the spot prices of
    its intervals, and the seconds before the market priced the offer at the line's own
    catalog price. The seconds add up to the line's."""
    prices: dict[Decimal, int] = {}
    for piece in slices:
        if (piece.instance_type_id, piece.region_id, piece.base_price) == (
            line.instance_type_id,
            line.region_id,
            line.base_price,
        ):
            prices[piece.price] = prices.get(piece.price, 0) + piece.seconds
    rest = line.seconds - sum(prices.values())
    if rest > 0 and line.base_price is not None:
        prices[line.base_price] = prices.get(line.base_price, 0) + rest
    return sorted(prices.items())
