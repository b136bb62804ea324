"""Usage revenue for the operator's pages: billing's `rated()` intervals summed per organization,
what starts before today kept between views.

The overview rates every organization's usage of two months and its chart a place's usage of
up to 30 days: on a fleet of 100,000 instances, about 27,000 intervals, most of them open ones
(one per running instance), three times per view. `kept_price_seconds` reads a period as
`portal.billing.usage` reads one organization's month, in parts that together are exactly
the intervals `rated()` rates over it:

- kept until any organization's sealed usage changes (`usage_version(FLEET)`, replaced by
  `usage_changed` with each organization's sealed version) and keyed by today's date: what
  starts before today's UTC midnight, but the open preemptible intervals. Any write to such
  an interval is a change to sealed usage (metering says so of every piece that starts
  before midnight). The closed intervals of the period's whole days are summed per
  organization by the database once; the open ones are kept as their organizations, starts
  and unit prices summed per start, and rated in memory at each view (`epoch_seconds`, the
  database's rule: every interval of a start counts the same seconds), or once, when kept,
  for a period over (last month: they count up to its end);
- rated by the database at every view: the day the period begins in (if it begins after
  midnight), what starts today, and the open preemptible intervals (the market moves their
  prices without usage being written). On SQLite (which rounds seconds its own way) every
  open interval is rated by the database.

Summed per unit price (whole seconds, a BIGINT) and multiplied once per price, and per
organization around billing's query, the database returns a row per organization instead of
one NUMERIC product per interval; the exact sums of the parts are added before the one
rounding per figure, so the figures are those of rating each period at once
(tests/operations/test_overview_revenue.py compares them).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.cache import cache
from django.db import connection
from django.db.models import F, Q, QuerySet, Sum, Value
from django.db.models.functions import Greatest

from portal.billing.models import UsageInterval, UsageKind
from portal.billing.periods import Month, midnight
from portal.billing.rating import rated
from portal.billing.rating.live import epoch_seconds
from portal.billing.usage import ANY, FLEET, KEPT_TTL, usage_version


def price_seconds_by_organization(
    rated_intervals: QuerySet, *, by_organization: bool = True
) -> dict[int, Decimal]:
    """Σ `price_seconds` of the intervals (from `rated()`) of each organization (or of all, as
    organization 0): one query, the per-price sums added up by the database around billing's."""
    if rated_intervals.query.is_empty():  # rated() of a period not begun: none, unannotated
        return {}
    group = ("organization_id",) if by_organization else ()
    per_price = (
        rated_intervals.values(*group, "unit_price")
        .annotate(seconds=Sum("plain_seconds"), apart=Sum("apart_price_seconds"))
        .order_by()
    )
    inner, params = per_price.query.sql_with_params()
    who = "g.organization_id" if by_organization else "0"
    sql = (
        f"SELECT {who}, "  # noqa: S608 - Django's SQL
        "SUM(CAST(g.seconds AS NUMERIC) * g.unit_price + COALESCE(g.apart, 0)) "
        f"FROM ({inner}) g GROUP BY 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return dict(cursor.fetchall())


# --- Revenue kept between views ---------------------------------------------------------------

KEPT_FORMAT = 3  # in the keys: a release that changes the kept parts' shape never reads old ones
# Rated at every view: the open preemptible intervals (open ones carry no sealed spot sum, so
# the partial index `usage_spot_unsealed` finds them).
OPEN_SPOT = Q(end__isnull=True, kind=UsageKind.PREEMPTIBLE, sealed_price_seconds__isnull=True)


@dataclass(frozen=True)
class _Kept:
    """What is kept of a period's revenue (see the module's docstring)."""

    closed: dict[int, Decimal]  # per organization: the closed intervals of the whole days
    # The open intervals begun before the cutoff, preemptible ones aside: (organization, start,
    # Σ unit prices of its intervals of that start); starts before the period's first midnight
    # are read as that midnight, the same seconds once clipped to the period.
    open: list[tuple[int, datetime, Decimal]]


def kept_price_seconds(
    intervals: QuerySet[UsageInterval], *, name: str, start: datetime, end: datetime, now: datetime
) -> Decimal:
    """Σ `price_seconds` of `intervals` (named `name` in the cache keys) that `rated()` rates
    over [start, end) at `now`, exactly (`kept_price_seconds_by_organization`, in all)."""
    sums = _kept_sums(intervals, name=name, start=start, end=end, now=now, by_organization=False)
    return sum(sums.values(), Decimal(0))


def kept_price_seconds_by_organization(
    intervals: QuerySet[UsageInterval], *, name: str, start: datetime, end: datetime, now: datetime
) -> dict[int, Decimal]:
    """Σ `price_seconds` per organization of `intervals` (named `name` in the cache keys)
    that `rated()` rates over [start, end) at `now`, exactly: a kept part, rated by the
    database when not kept, and today's part.

    The kept part is what starts before the cutoff (today's UTC midnight, or `end` if sooner)
    but the open preemptible intervals: the closed intervals of the whole days from the first
    midnight at or after `start`, summed, and the open intervals, rated in memory. The rest
    (the part of a day before that midnight, today, the open preemptible intervals) is rated
    by the database. Closed intervals never cross a UTC midnight (`rated()` relies on it too).
    """
    return _kept_sums(intervals, name=name, start=start, end=end, now=now, by_organization=True)


def _kept_sums(
    intervals: QuerySet[UsageInterval],
    *,
    name: str,
    start: datetime,
    end: datetime,
    now: datetime,
    by_organization: bool,
) -> dict[int, Decimal]:
    if now <= start:  # rated(): nothing to rate yet
        return {}
    floor = midnight(start)
    first_whole = floor if floor == start else floor + timedelta(days=1)
    cutoff = min(midnight(now), end)
    in_memory = connection.vendor == "postgresql"
    key = (
        f"operations:revenue{KEPT_FORMAT}:{name}:{floor:%Y%m%d}:{first_whole:%Y%m%d}:"
        f"{cutoff:%Y%m%d}:{int(in_memory)}{int(by_organization)}:{usage_version(FLEET)}"
    )
    kept = cache.get(key)
    if kept is None:
        kept = _rate_kept(
            intervals,
            floor,
            first_whole,
            cutoff,
            in_memory=in_memory,
            by_organization=by_organization,
        )
        if cutoff == end and floor == start:  # a period over (last month): its open intervals
            kept = _open_added(kept, start=start, until=end)  # count up to its end at any `now`
        cache.set(key, kept, timeout=KEPT_TTL)

    rest = Q(start__gte=cutoff) | (OPEN_SPOT if in_memory else Q(end__isnull=True))
    first_day = Q()
    if floor < first_whole:  # the day `start` falls in (rated() reads no earlier closed one)
        first_day = Q(start__gte=floor, start__lt=first_whole, end__isnull=False)
        rest |= first_day
    until = min(now, end)
    rated_now = _open_added(kept, start=start, until=until)
    sums: defaultdict[int, Decimal] = defaultdict(Decimal, rated_now.closed)
    if in_memory:  # today's part, kept until any usage is written
        today = _kept_today(
            intervals,
            name=name,
            start=start,
            end=end,
            cutoff=cutoff,
            now=now,
            by_organization=by_organization,
        )
        for organization_id, amount in _open_added(
            today.kept, start=start, until=until
        ).closed.items():
            sums[organization_id] += amount
        rest = OPEN_SPOT | today.live if today.any_live else OPEN_SPOT
        if first_day:
            rest |= first_day
        elif not today.any_live and not today.open_spot:
            return dict(sums)  # nothing rated by the database at this view
    live = rated(intervals.filter(rest), start=start, end=end, now=now)
    for organization_id, amount in price_seconds_by_organization(
        live, by_organization=by_organization
    ).items():
        sums[organization_id] += amount
    return dict(sums)


# Today's intervals rated by the database at every view all the same: the preemptible ones
# (priced by the market, which moves without usage being written) and any with a sealed sum
# (`rated()` reads it only when the period and the clock hold the interval whole). Any other
# that starts before the clock is rated the same at every later clock: a closed one's seconds
# do not depend on it, an open one's are rated in memory.
PRICED_APART = Q(kind=UsageKind.PREEMPTIBLE) | Q(sealed_price_seconds__isnull=False)


@dataclass(frozen=True)
class _Today:
    """What is kept of the part of a period that starts today (at `cutoff`), as of `at`: the
    closed intervals begun before then, summed; the open ones as their organizations, starts
    and unit prices summed per start (rated in memory at each view, as the kept days' are).
    `live` (if `any_live`) the rest of today's, rated at each view: those priced apart
    (`PRICED_APART`), any that starts at `at` or later, and, in a window that ends at the
    clock, any that ends after `at`; `open_spot`: whether any open preemptible interval of any
    day is to be rated at each view."""

    at: datetime
    kept: _Kept
    live: Q
    any_live: bool
    open_spot: bool


def _kept_today(
    intervals: QuerySet[UsageInterval],
    *,
    name: str,
    start: datetime,
    end: datetime,
    cutoff: datetime,
    now: datetime,
    by_organization: bool,
) -> _Today:
    """`_rate_today`, kept until any organization's usage is written (`usage_version(FLEET,
    ANY)`). What it keeps does not move with `start` before `cutoff`, nor with `end` after
    the clock (the overview's month) or at it (a place's window that ends now)."""
    until = "clock" if end == now else "later" if end > now else end.isoformat()
    bounds = f"{max(start, cutoff).isoformat()}:{until}"
    key = (
        f"operations:revenue-today{KEPT_FORMAT}:{name}:{bounds}:{int(by_organization)}:"
        f"{usage_version(FLEET, ANY)}"
    )
    today = cache.get(key)
    if today is None or today.at > now:  # kept for a later clock: not this view's
        today = _rate_today(
            intervals, start=start, end=end, cutoff=cutoff, now=now, by_organization=by_organization
        )
        cache.set(key, today, timeout=KEPT_TTL)
    return today


def _rate_today(
    intervals: QuerySet[UsageInterval],
    *,
    start: datetime,
    end: datetime,
    cutoff: datetime,
    now: datetime,
    by_organization: bool,
) -> _Today:
    """Today's part of [start, end) rated by the database as of `now` (four queries, once
    until any usage is written)."""
    apart = PRICED_APART | Q(start__gte=now)
    if end <= now:  # a window that ends at the clock clips the closed ones that end later
        apart |= Q(end__gt=now)
    live = Q(start__gte=cutoff) & apart
    steady = intervals.filter(start__gte=cutoff, start__lt=min(end, now)).exclude(apart)
    closed = price_seconds_by_organization(
        rated(steady.filter(end__isnull=False), start=start, end=end, now=now),
        by_organization=by_organization,
    )
    who = ("organization_id",) if by_organization else ()
    opened = [
        tuple(row) if by_organization else (0, *row)
        for row in steady.filter(end__isnull=True)
        .values(*who, "start")
        .annotate(prices=Sum("unit_price"))
        .order_by()
        .values_list(*who, "start", "prices")
    ]
    return _Today(
        at=now,
        kept=_Kept(closed=closed, open=opened),
        live=live,
        any_live=intervals.filter(live, start__lt=end).exists(),
        open_spot=intervals.filter(OPEN_SPOT).exists(),
    )


def _open_added(kept: _Kept, *, start: datetime, until: datetime) -> _Kept:
    """The kept sums with its open intervals rated up to `until` (`rated()`'s rule, in memory)
    added."""
    if not kept.open:
        return kept
    sums: defaultdict[int, Decimal] = defaultdict(Decimal, kept.closed)
    seconds_since: dict[datetime, int] = {}  # every open interval of a start has the same
    for organization_id, began, prices in kept.open:
        began = max(began, start)
        seconds = seconds_since.get(began)
        if seconds is None:
            seconds = seconds_since[began] = epoch_seconds(began, until)
        sums[organization_id] += seconds * prices
    return _Kept(closed=dict(sums), open=[])


def _rate_kept(
    intervals: QuerySet[UsageInterval],
    floor: datetime,
    first_whole: datetime,
    cutoff: datetime,
    *,
    in_memory: bool,
    by_organization: bool,
) -> _Kept:
    """The kept part, rated by the database (two queries). As `usage` does, its closed
    intervals are rated as of the cutoff, where nothing of them has changed. Not by
    organization, its open intervals are summed per start of all organizations (as 0)."""
    closed: dict[int, Decimal] = {}
    if first_whole < cutoff:
        whole_days = intervals.filter(start__gte=first_whole, start__lt=cutoff, end__isnull=False)
        closed = price_seconds_by_organization(
            rated(whole_days, start=first_whole, end=cutoff, now=cutoff),
            by_organization=by_organization,
        )
    opened: list[tuple[int, datetime, Decimal]] = []
    if in_memory:
        who = ("organization_id",) if by_organization else ()
        opened = [
            tuple(row) if by_organization else (0, *row)
            for row in intervals.filter(start__lt=cutoff, end__isnull=True)
            .exclude(OPEN_SPOT)
            .annotate(began=Greatest(F("start"), Value(floor)))
            .values(*who, "began")
            .annotate(prices=Sum("unit_price"))
            .order_by()
            .values_list(*who, "began", "prices")
        ]
    return _Kept(closed=closed, open=opened)


@dataclass(frozen=True)
class FleetRevenue:
    """Σ seconds × unit price (divide by 3600 for the amount) of the fleet's usage: this month
    per organization (those with usage), last month in all."""

    this_month: dict[int, Decimal]
    last_month: Decimal

    @property
    def this_month_total(self) -> Decimal:
        return sum(self.this_month.values(), Decimal(0))


def fleet_revenue(*, now: datetime) -> FleetRevenue:
    """The revenue of `now`'s month and the month before, exactly as `rated()` rates each."""
    this = Month.of(now)
    last = this.previous()
    every = UsageInterval.objects.all()
    return FleetRevenue(
        this_month=kept_price_seconds_by_organization(
            every, name="fleet", start=this.start, end=this.end, now=now
        ),
        last_month=kept_price_seconds(every, name="fleet", start=last.start, end=last.end, now=now),
    )
