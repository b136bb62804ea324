"""Rated intervals: each usage interval clipped to a period (an open one runs up to `now`),
its seconds and seconds x unit price as SQL expressions (`rated()`), spot prices included."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, TypedDict, cast

from django.db import connection
from django.db.models import (
    BigIntegerField,
    Case,
    DecimalField,
    Expression,
    ExpressionWrapper,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Cast, Coalesce, Greatest, Least

from portal.billing import periods
from portal.billing.models import UsageInterval, UsageKind
from portal.billing.money import SECONDS_PER_HOUR
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
    # The same split by how a group sums it (`per_price`): `plain_seconds` of an interval at
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


def market_priced_before(moment: datetime) -> bool:
    """Whether the spot market had priced any offer before `moment`. If not (a period before
    the market started, or no market at all), no second of the period is at a spot price and
    `rated()` leaves the lookups out: PostgreSQL runs the plain query in parallel, while the
    correlated lookups keep the whole query to one process. An index lookup, in plain SQL
    (the ORM's `exists()` took ~0.4 ms to build, at every view of the billing page)."""
    with connection.cursor() as cursor:
        cursor.execute(_market_priced_before_sql(), [moment])
        return cursor.fetchone() is not None


@cache
def _market_priced_before_sql() -> str:
    quote, meta = connection.ops.quote_name, SpotPrice._meta
    valid_from = quote(meta.get_field("valid_from").column)
    return f"SELECT 1 FROM {quote(meta.db_table)} WHERE {valid_from} < %s LIMIT 1"  # noqa: S608


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
        at_spot_prices = market_priced_before(min(end, now))
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


def per_price() -> ExpressionWrapper:
    """Σ seconds × price per group of a GROUP BY that includes the unit price: the seconds at
    the unit price summed and multiplied once per group, plus the sum of what is rated apart
    (preemptible usage at spot prices, mostly sealed). The exact NUMERIC of `rated()`."""
    return ExpressionWrapper(
        Cast(Sum("plain_seconds"), EXACT) * F("unit_price")
        + Coalesce(Sum("apart_price_seconds"), Value(Decimal(0)), output_field=EXACT),
        output_field=EXACT,
    )


def exact_amount(price_seconds: Decimal | None) -> Decimal:
    """The exact amount of `price_seconds` (unit price × seconds), not yet rounded."""
    return (price_seconds or Decimal(0)) / SECONDS_PER_HOUR


def of_organization(organization_id: int, where: Q | None) -> QuerySet[UsageInterval]:
    queryset = UsageInterval.objects.filter(organization_id=organization_id)
    return queryset.filter(where) if where is not None else queryset
