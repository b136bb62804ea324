"""Open intervals, rated in memory.

An open interval is the one part of usage that changes with the clock alone: it counts up to
`now`. `portal.billing.usage` keeps an organization's open intervals between views (until
metering writes) and rates them here, by `rated()`'s rule, instead of asking the database
on every view. tests/billing/test_usage.py compares the two.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from operator import itemgetter
from typing import TYPE_CHECKING

from django.db import connection
from django.db.models import (
    Case,
    F,
    Field,
    OuterRef,
    Q,
    Subquery,
    Sum,
    When,
)
from django.db.models.expressions import Col
from django.db.models.functions import Coalesce

from portal.billing.models import UsageInterval, UsageKind
from portal.billing.rating.by_instance import InstanceSums
from portal.billing.rating.by_line import LINE_FIELDS
from portal.billing.rating.intervals import EXACT
from portal.market.models import SpotPrice

if TYPE_CHECKING:
    pass

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
_VALID_FROM = itemgetter(0)  # of a row as `spot_rows` keeps it (without the offer)
REGION_ID, TYPE_ID = LINE_FIELDS.index("region_id"), LINE_FIELDS.index("instance_type_id")


def spot_rows_for_open(rows: Iterable[tuple], *, start: datetime) -> SpotRows:
    """The spot price rows `rate_open` needs for the preemptible ones among open intervals
    (`open_interval_rows`) rated over a period from `start`: each offer's rows in force at or
    after the earliest of their clipped starts. One query; none without such intervals."""
    preemptible = [row for row in rows if row[1 + KIND] == UsageKind.PREEMPTIBLE]
    if not preemptible:
        return {}
    return spot_rows(
        {(row[1 + REGION_ID], row[1 + TYPE_ID]) for row in preemptible},
        since=min(max(row[-1], start) for row in preemptible),
    )


def spot_rows(offers: set[tuple[int, int]], *, since: datetime) -> SpotRows:
    """The spot price rows of `offers` ((region id, type id) pairs) in force at or after
    `since`, per offer in the order they start: what `spot_integral_at` and `spot_price_at`
    read for any moment from `since` on. One query."""
    found: SpotRows = {}
    # The offers' regions and types (a few of each), the other pairs dropped here: one short
    # query, where an OR of one condition per offer cost ~1 ms of Python; plain SQL built once
    # per process (the ORM's took ~0.7 ms to build), its values converted as the ORM's are.
    regions = list({region_id for region_id, _ in offers})
    types = list({type_id for _, type_id in offers})
    sql, converters = _spot_rows_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            sql.format(
                regions=", ".join(["%s"] * len(regions)), types=", ".join(["%s"] * len(types))
            ),
            [*regions, *types, since],
        )
        spots = cursor.fetchall()
    for spot in spots:
        if (spot[0], spot[1]) in offers:
            values = list(spot)
            for index, column, functions in converters:
                for convert in functions:
                    values[index] = convert(values[index], column, connection)
            found.setdefault((spot[0], spot[1]), []).append(tuple(values[2:]))
    return found


@cache
def _spot_rows_sql() -> tuple[str, list[tuple[int, Col, list]]]:
    """The SQL of `spot_rows_for_open`'s query (its IN lists left to `str.format`), from the
    model's table and columns, with the SPOT_FIELDS' converters (as the ORM's compiler has
    them)."""
    quote = connection.ops.quote_name
    meta = SpotPrice._meta
    columns, converters = [], []
    for index, name in enumerate(SPOT_FIELDS):
        found = meta.get_field(name.removesuffix("_id"))
        assert isinstance(found, Field) and found.column
        columns.append(quote(found.column))
        col = found.get_col(meta.db_table)
        functions = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if functions:
            converters.append((index, col, functions))
    region, itype, valid_from, valid_until = columns[:4]
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(meta.db_table)}"  # noqa: S608 - the model's
        f" WHERE {region} IN ({{regions}}) AND {itype} IN ({{types}})"
        f" AND ({valid_until} IS NULL OR {valid_until} > %s) ORDER BY {valid_from}"
    )
    return sql, converters


def spot_integral_at(rows: list[tuple], unit_price: Decimal, at: datetime) -> Decimal:
    """`_spot_integral` in Python, for an `at` no earlier than the start `rows` were read
    from (`spot_rows_for_open`): the offer's last row starting at or before `at` carries the
    sums before it, to which its own seconds up to `at` are added. Before such a row, the
    next row's sums before it are the same figure (zero before the offer's first price).
    Without rows the figure is the same at every `at` of the interval: zero will do.

    The rows are in the order they start: a binary search (a month of prices every five
    minutes is ~8,600 rows an offer, and the overview rates every open preemptible interval
    of the fleet against them)."""
    found = bisect_right(rows, at, key=_VALID_FROM)  # rows[:found] start at or before `at`
    covering = rows[found - 1] if found else None
    following = rows[found] if found < len(rows) else None
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
    preemptible, stopped_kind = UsageKind.PREEMPTIBLE, UsageKind.STOPPED
    unit, kind, region, itype = 1 + UNIT_PRICE, 1 + KIND, 1 + REGION_ID, 1 + TYPE_ID
    # The row's hot loop (a thousand open intervals on a large organization's every view):
    # indexes rather than unpacking, the day of a start already in UTC read without a
    # conversion.
    for row in rows:  # instance id, the LINE_FIELDS in their order, gpus, start
        began = row[-1]
        if began >= until:  # rated(): an interval still to come
            continue
        clipped_start = began if began > start else start
        seconds = epoch_seconds(clipped_start, until)
        price_seconds = seconds * row[unit]
        line_kind = row[kind]
        if spot and line_kind == preemptible:
            offer_rows = spot.get((row[region], row[itype]))
            if offer_rows:
                unit_price = row[unit]
                price_seconds += spot_integral_at(offer_rows, unit_price, until) - spot_integral_at(
                    offer_rows, unit_price, clipped_start
                )
        day = (began if began.tzinfo is UTC else began.astimezone(UTC)).date()
        line = row[1:-2]
        gpu_seconds = seconds * row[-2]
        group = line_days.get((day, line))
        if group is None:  # a thousand open intervals make a few dozen of these
            line_days[(day, line)] = {
                "day": day,
                **dict(zip(LINE_FIELDS, line, strict=True)),
                "total_seconds": seconds,
                "total_gpu_seconds": gpu_seconds,
                "total_price_seconds": price_seconds,
                "first_start": began,
            }
        else:
            group["total_seconds"] += seconds
            group["total_gpu_seconds"] += gpu_seconds
            group["total_price_seconds"] += price_seconds
            if began < group["first_start"]:
                group["first_start"] = began
        if line_kind == stopped_kind:
            instances.append((row[0], 0, seconds, price_seconds))
        else:
            instances.append((row[0], seconds, 0, price_seconds))
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
