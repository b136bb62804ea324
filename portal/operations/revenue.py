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
  and unit prices summed per start, and rated in memory at each view as a whole
  (`portal.operations.open_sums`: the same Decimal as `epoch_seconds`, the database's rule,
  applied to each one), or once, when kept, for a period over (last month: they count up to
  its end). When the period begins after a midnight, that first day's closed intervals are
  kept as rows and clipped to the period's start in memory at each view;
- kept until any organization's usage is written (`usage_version(FLEET, ANY)`): what starts
  today, as of the clock it was read at: its closed intervals summed, its open ones rated
  in memory as above, and in a window that ends at the clock, the closed ones that end after
  it kept as rows and clipped in memory;
- kept as rows until any organization's usage is written, and rated in memory at every view
  against the spot prices then in force (`portal.operations.apart`; the market moves their
  prices without usage being written): the open preemptible intervals and today's intervals
  priced apart (preemptible or sealed);
- rated by the database at every view: the first day's intervals priced apart and what
  starts after the clock today was read at. On SQLite (which rounds seconds its own way)
  every open interval, the first day and today are rated by the database.

A view reads what is kept of its periods with the page's other kept parts in one round trip
(`kept_keys`, `fleet_revenue_keys`).

Summed per unit price (whole seconds, a BIGINT) and multiplied once per price, and per
organization around billing's query, the database returns a row per organization instead of
one NUMERIC product per interval; the exact sums of the parts are added before the one
rounding per figure, so the figures are those of rating each period at once
(tests/operations/test_overview_revenue.py compares them).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import F, Q, QuerySet, Sum, Value
from django.db.models.functions import Greatest

from portal.billing.models import UsageInterval, UsageKind
from portal.billing.periods import Month, midnight
from portal.billing.rating import rated
from portal.billing.rating.live import epoch_seconds
from portal.billing.usage import ANY, FLEET, KEPT_TTL, usage_version
from portal.operations.apart import APART_FIELDS, ApartRow, price_seconds_apart
from portal.operations.open_sums import OpenSums


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

KEPT_FORMAT = 8  # in the keys: a release that changes the kept parts' shape never reads old ones
# Rated at every view at the spot prices then in force: the open preemptible intervals (open
# ones carry no sealed spot sum, so the partial index `usage_spot_unsealed` finds them).
OPEN_SPOT = Q(end__isnull=True, kind=UsageKind.PREEMPTIBLE, sealed_price_seconds__isnull=True)


@dataclass(frozen=True)
class _Kept:
    """What is kept of a period's revenue (see the module's docstring)."""

    closed: dict[int, Decimal]  # per organization: the closed intervals of the whole days
    # The open intervals begun before the cutoff, preemptible ones aside, per organization, to
    # be rated up to the clock (`OpenSums`); starts before the period's first midnight are read
    # as that midnight, the same seconds once clipped to the period.
    open: OpenSums
    # Closed intervals that a period's start or end may clip at a later view, as (organization,
    # start, end, unit price), rated in memory at each view (`_clipped_added`): when the period
    # starts after a midnight, that first day's (but those priced apart, `PRICED_APART`); in a
    # window that ends at the clock, today's that end after it. `first_day_apart`: whether the
    # first day has any priced apart (then rated by the database at each view).
    clipped: list[tuple[int, datetime, datetime, Decimal]] = field(default_factory=list)
    first_day_apart: bool = False


def usage_versions() -> tuple[str, str]:
    """The versions of the fleet's sealed usage and of all its usage (`usage_version`), which
    name what is kept."""
    return usage_version(FLEET), usage_version(FLEET, ANY)


def kept_keys(
    *,
    name: str,
    start: datetime,
    end: datetime,
    now: datetime,
    by_organization: bool,
    versions: tuple[str, str],
) -> list[str]:
    """The cache keys of what is kept of a period (`versions`: `usage_versions()`), for a
    caller that reads them with others in one round trip."""
    if now <= start:
        return []
    floor = midnight(start)
    first_whole = floor if floor == start else floor + timedelta(days=1)
    cutoff = min(midnight(now), end)
    in_memory = connection.vendor == "postgresql"
    sealed, every = versions
    kept = (
        f"operations:revenue{KEPT_FORMAT}:{name}:{floor:%Y%m%d}:{first_whole:%Y%m%d}:"
        f"{cutoff:%Y%m%d}:{int(in_memory)}{int(by_organization)}:{sealed}"
    )
    if not in_memory:
        return [kept]
    until = "clock" if end == now else "later" if end > now else end.isoformat()
    bounds = f"{max(start, cutoff).isoformat()}:{until}"
    today = f"operations:revenue-today{KEPT_FORMAT}:{name}:{bounds}:{int(by_organization)}:{every}"
    return [kept, today]


def kept_price_seconds(
    intervals: QuerySet[UsageInterval],
    *,
    name: str,
    start: datetime,
    end: datetime,
    now: datetime,
    versions: tuple[str, str] | None = None,
    found: dict[str, Any] | None = None,
) -> Decimal:
    """Σ `price_seconds` of `intervals` (named `name` in the cache keys) that `rated()` rates
    over [start, end) at `now`, exactly (`kept_price_seconds_by_organization`, in all)."""
    sums = _kept_sums(
        intervals,
        name=name,
        start=start,
        end=end,
        now=now,
        by_organization=False,
        versions=versions,
        found=found,
    )
    return sum(sums.values(), Decimal(0))


def kept_price_seconds_by_organization(
    intervals: QuerySet[UsageInterval],
    *,
    name: str,
    start: datetime,
    end: datetime,
    now: datetime,
    versions: tuple[str, str] | None = None,
    found: dict[str, Any] | None = None,
) -> dict[int, Decimal]:
    """Σ `price_seconds` per organization of `intervals` (named `name` in the cache keys)
    that `rated()` rates over [start, end) at `now`, exactly: a kept part, rated by the
    database when not kept, and today's part.

    The kept part is what starts before the cutoff (today's UTC midnight, or `end` if sooner)
    but the open preemptible intervals: the closed intervals of the whole days from the first
    midnight at or after `start`, summed, and the open intervals, rated in memory. The rest
    (the part of a day before that midnight, today, the open preemptible intervals) is rated
    by the database. Closed intervals never cross a UTC midnight (`rated()` relies on it too).

    `versions` (`usage_versions()`) and `found` (what the caller read of `kept_keys`, with its
    other keys, in one round trip) save the reads of the cache of its own.
    """
    return _kept_sums(
        intervals,
        name=name,
        start=start,
        end=end,
        now=now,
        by_organization=True,
        versions=versions,
        found=found,
    )


def _kept_sums(
    intervals: QuerySet[UsageInterval],
    *,
    name: str,
    start: datetime,
    end: datetime,
    now: datetime,
    by_organization: bool,
    versions: tuple[str, str] | None,
    found: dict[str, Any] | None,
) -> dict[int, Decimal]:
    if now <= start:  # rated(): nothing to rate yet
        return {}
    floor = midnight(start)
    first_whole = floor if floor == start else floor + timedelta(days=1)
    cutoff = min(midnight(now), end)
    in_memory = connection.vendor == "postgresql"
    keys = kept_keys(
        name=name,
        start=start,
        end=end,
        now=now,
        by_organization=by_organization,
        versions=versions or usage_versions(),
    )
    if found is None:
        found = cache.get_many(keys)
    key = keys[0]
    kept = found.get(key)
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
    if in_memory and first_day:  # in memory, but those priced apart
        _clipped_added(sums, kept.clipped, start=start, end=end, now=now)
        first_day = first_day & PRICED_APART if kept.first_day_apart else Q()
    if in_memory:  # today's part, kept until any usage is written
        today = _kept_today(
            intervals,
            key=keys[1],
            kept=found.get(keys[1]),
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
        _clipped_added(sums, today.kept.clipped, start=start, end=end, now=now)
        for organization_id, amount in price_seconds_apart(
            today.apart, start=start, end=end, now=now
        ).items():
            sums[organization_id] += amount
        rest = first_day | Q(start__gte=today.at) if today.later else first_day
        if not rest:
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
    In a window that ends at the clock, the closed ones that end after `at` are kept as rows
    (`_Kept.clipped`). `apart`: the rows of today's intervals priced apart (`PRICED_APART`)
    and of the open preemptible ones of any day, begun before `at`, rated in memory at each
    view at the spot prices then in force (`portal.operations.apart`); `later`: whether any
    interval starts at `at` or later (rated by the database at each view)."""

    at: datetime
    kept: _Kept
    apart: list[ApartRow]
    later: bool


def _kept_today(
    intervals: QuerySet[UsageInterval],
    *,
    key: str,
    kept: _Today | None,
    start: datetime,
    end: datetime,
    cutoff: datetime,
    now: datetime,
    by_organization: bool,
) -> _Today:
    """`_rate_today`, kept (`kept`, read under `key`) until any organization's usage is written
    (`usage_version(FLEET, ANY)`). What it keeps does not move with `start` before `cutoff`,
    nor with `end` after the clock (the overview's month) or at it (a place's window that ends
    now)."""
    today = kept
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
    """Today's part of [start, end) rated by the database as of `now` (four or five queries,
    once until any usage is written)."""
    until = min(end, now)
    steady = intervals.filter(start__gte=cutoff, start__lt=until).exclude(PRICED_APART)
    who = ("organization_id",) if by_organization else ()
    ended = steady.filter(end__isnull=False)
    clipped: list[tuple[int, datetime, datetime, Decimal]] = []
    if end <= now:  # a window that ends at the clock clips the closed ones that end later
        clipped = [
            row if by_organization else (0, *row)
            for row in ended.filter(end__gt=now).values_list(*who, "start", "end", "unit_price")
        ]
        ended = ended.filter(end__lte=now)
    closed = price_seconds_by_organization(
        rated(ended, start=start, end=end, now=now), by_organization=by_organization
    )
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
        kept=_Kept(
            closed=closed,
            open=OpenSums.of(opened, clipped_before=max(start, cutoff)),
            clipped=clipped,
        ),
        apart=[
            row if by_organization else (0, *row)
            for row in intervals.filter(
                (Q(start__gte=cutoff) & PRICED_APART) | OPEN_SPOT, start__lt=until
            ).values_list(*who, *APART_FIELDS)
        ],
        later=intervals.filter(start__gte=now, start__lt=end).exists(),
    )


def _clipped_added(
    sums: defaultdict[int, Decimal],
    clipped: list[tuple[int, datetime, datetime, Decimal]],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
) -> None:
    """Closed intervals rated over [start, end) at `now` in memory, as `rated()` rates them
    (clipped to the period, whole seconds as the database rounds them), added to `sums`."""
    upper = min(end, now)
    for organization_id, began, ended, price in clipped:
        if began < upper and ended > start:  # at least a second inside the period
            sums[organization_id] += epoch_seconds(max(began, start), min(ended, end)) * price


_NONE_OPEN = OpenSums.of([], clipped_before=datetime.min.replace(tzinfo=UTC))


def _open_added(kept: _Kept, *, start: datetime, until: datetime) -> _Kept:
    """The kept sums with its open intervals rated up to `until` (`rated()`'s rule, in memory)
    added."""
    if not kept.open:
        return kept
    sums: defaultdict[int, Decimal] = defaultdict(Decimal, kept.closed)
    for organization_id, amount in kept.open.price_seconds(start=start, until=until).items():
        sums[organization_id] += amount
    return replace(kept, closed=dict(sums), open=_NONE_OPEN)


def _rate_kept(
    intervals: QuerySet[UsageInterval],
    floor: datetime,
    first_whole: datetime,
    cutoff: datetime,
    *,
    in_memory: bool,
    by_organization: bool,
) -> _Kept:
    """The kept part, rated by the database (two queries; four for a period that starts after
    a midnight: its first day's closed intervals, and whether any of them is priced apart). As
    `usage` does, its closed intervals are rated as of the cutoff, where nothing of them has
    changed. Not by organization, its open intervals are all of organization 0."""
    closed: dict[int, Decimal] = {}
    first_day: list[tuple[int, datetime, datetime, Decimal]] = []
    first_day_apart = False
    if in_memory and floor < first_whole:
        that_day = intervals.filter(start__gte=floor, start__lt=first_whole, end__isnull=False)
        first_day = [
            row if by_organization else (0, *row)
            for row in that_day.exclude(PRICED_APART).values_list(
                *(("organization_id",) if by_organization else ()), "start", "end", "unit_price"
            )
        ]
        first_day_apart = that_day.filter(PRICED_APART).exists()
    if first_whole < cutoff:
        whole_days = intervals.filter(start__gte=first_whole, start__lt=cutoff, end__isnull=False)
        closed = price_seconds_by_organization(
            rated(whole_days, start=first_whole, end=cutoff, now=cutoff),
            by_organization=by_organization,
        )
    opened: list[tuple[int, datetime, Decimal]] = []
    if in_memory:  # (the first day's open ones, when the period starts after its midnight, are
        # clipped to the period's start at each view: they are rated one by one)
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
    return _Kept(
        closed=closed,
        open=OpenSums.of(opened, clipped_before=first_whole),
        clipped=first_day,
        first_day_apart=first_day_apart,
    )


@dataclass(frozen=True)
class FleetRevenue:
    """Σ seconds × unit price (divide by 3600 for the amount) of the fleet's usage: this month
    per organization (those with usage), last month in all."""

    this_month: dict[int, Decimal]
    last_month: Decimal

    @property
    def this_month_total(self) -> Decimal:
        return sum(self.this_month.values(), Decimal(0))


def fleet_revenue_keys(*, now: datetime, versions: tuple[str, str]) -> list[str]:
    """The cache keys `fleet_revenue` reads (`versions`: `usage_versions()`)."""
    this = Month.of(now)
    last = this.previous()
    return [
        *kept_keys(
            name="fleet",
            start=this.start,
            end=this.end,
            now=now,
            by_organization=True,
            versions=versions,
        ),
        *kept_keys(
            name="fleet",
            start=last.start,
            end=last.end,
            now=now,
            by_organization=False,
            versions=versions,
        ),
    ]


def fleet_revenue(
    *,
    now: datetime,
    versions: tuple[str, str] | None = None,
    found: dict[str, Any] | None = None,
) -> FleetRevenue:
    """The revenue of `now`'s month and the month before, exactly as `rated()` rates each.
    `versions` and `found`: what the caller read of `fleet_revenue_keys` (one round trip for
    both months; without them, the keys are read here)."""
    this = Month.of(now)
    last = this.previous()
    every = UsageInterval.objects.all()
    versions = versions or usage_versions()
    if found is None:
        found = cache.get_many(fleet_revenue_keys(now=now, versions=versions))
    return FleetRevenue(
        this_month=kept_price_seconds_by_organization(
            every,
            name="fleet",
            start=this.start,
            end=this.end,
            now=now,
            versions=versions,
            found=found,
        ),
        last_month=kept_price_seconds(
            every,
            name="fleet",
            start=last.start,
            end=last.end,
            now=now,
            versions=versions,
            found=found,
        ),
    )
