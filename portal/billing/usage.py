"""A month's usage as the billing pages read it: kept between views, open intervals rated now.

Rating a month scans every interval of it: ~14,000 for an organization with 1,000 instances by
the 24th, far too many for every view of the billing page, the dashboard or a budget check. But
intervals never cross a UTC midnight, and an interval changes only when metering writes it. So
a month is read in two parts, each kept in the cache under a version of the organization's
usage that `usage_changed` replaces when metering (or anything else) writes:

- sealed: the closed intervals starting before today's UTC midnight (or before the month's end,
  for a past month), summed by the database once (one GROUP BY per question) and kept until an
  interval before today's midnight is written (a state change recorded late, the split of a
  running piece after midnight, a month closed by its invoice);
- live: today's closed intervals, summed the same way, and the open intervals themselves
  (about one per running or stopped instance), kept until any interval of the organization is
  written. An open interval counts up to `now`: it is rated in memory on every view
  (`rating.rate_open`, the database's rule: clipped to the period, seconds rounded as
  PostgreSQL rounds them; a preemptible one at the spot prices of its offer, read on every
  view in one query since the market moves them without writing usage).

The parts' raw sums (seconds, the exact Σ seconds × price) are added before the one rounding per
line, day and instance, so the figures are exactly those of `rating` over the whole month; the
tests compare them, fractions of a second included. Where the in-memory rule would not be the
database's (SQLite rounds seconds its own way; a clock set back before today's usage), the live
part is rated by the database on every view. Invoices are issued from `rating` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from typing import Any, TypeVar, cast

from django.core.cache import cache
from django.db import connection
from django.db.models import Max, Q

from portal.billing import rating
from portal.billing.models import UsageInterval, UsageKind
from portal.billing.periods import Month, midnight
from portal.web import versions

T = TypeVar("T")
KEPT_TTL = 26 * 3600  # a kept part's key names its day: it is not read after tomorrow
KEPT_FORMAT = 2  # in the keys: a release that changes the kept rows' shape never reads old ones


SEALED, ANY = "sealed", "any"  # what a usage version tracks: sealed intervals, or any
# In place of an organization: every organization's sealed usage at once (the operator's
# revenue, `portal.operations.revenue`), replaced with the sealed version of any of them; and
# (ANY) every organization's usage, replaced with any organization's.
FLEET = "fleet"


def usage_version_key(organization_id: int | str, scope: str = SEALED) -> str:
    """The cache key of `usage_version` (a reader may read it with other keys at once)."""
    return f"billing:usage-version:{scope}:{organization_id}"


def usage_version(organization_id: int | str, scope: str = SEALED) -> str:
    """A token replaced after every change to the organization's sealed usage (SEALED) or to
    any of its usage (ANY), or (`FLEET`, SEALED) to any organization's sealed usage: what is
    kept under an old token is never read again."""
    key = usage_version_key(organization_id, scope)
    return versions.tokens([key])[key]


def usage_changed(organization_id: int, *, sealed: bool = True) -> None:
    """Usage of the organization was written (`sealed`: some of it before today's midnight):
    what is kept of it is not read again (at once, for a budget check after metering in the
    same transaction, and on commit: `portal.web.versions.retire`)."""
    keys = [usage_version_key(organization_id, ANY), usage_version_key(FLEET, ANY)]
    if sealed:
        keys += [usage_version_key(organization_id, SEALED), usage_version_key(FLEET, SEALED)]
    versions.retire(keys)


def sealed_before(month: Month, now: datetime) -> datetime:
    """Where the month's sealed part ends: today's UTC midnight, or the month's end if sooner."""
    return min(midnight(now), month.end)


@dataclass(frozen=True)
class LivePart:
    """Today's part of a month, kept between views: what does not move with the clock."""

    lines: list[dict]  # today's closed intervals per day and line (`rating.line_day_rows`)
    # The month's closed intervals per instance, sealed days and today's added up (instance
    # id -> [running seconds, stopped seconds, Σ seconds × price]): what only the open
    # intervals add to at each view.
    closed: dict[int, list]
    open: list[tuple]  # the open intervals (`rating.open_interval_rows`), rated at each view
    latest: datetime | None  # the latest start among them: a `now` up to it counts less
    first: datetime | None  # the organization's first usage, any month (the month picker)


class MonthUsage:
    """A month's usage at `now`, each figure read when first asked for from the two kept parts
    (each rated by the database when it is not kept), the open intervals rated in memory.
    Each figure is rounded once, as `rating` rounds it."""

    def __init__(self, *, organization_id: int, month: Month, now: datetime):
        self.organization_id = organization_id
        self.month = month
        self.now = now
        self.cutoff = sealed_before(month, now)
        self._period = {"organization_id": organization_id, "start": month.start, "end": month.end}

    @cached_property
    def _versions(self) -> dict[str, str]:
        """The organization's two usage versions (`usage_version`), read in one round trip."""
        keys = {scope: usage_version_key(self.organization_id, scope) for scope in (SEALED, ANY)}
        found = versions.tokens(keys.values())
        return {scope: found[key] for scope, key in keys.items()}

    def _key(self, part: str) -> str:
        """The cache key of a kept part: "live", or the sealed "lines" or "instances"."""
        where = f"{self.organization_id}:{self.month.key}:{self.cutoff:%Y%m%d}"
        if part == "live":
            return f"billing:live{KEPT_FORMAT}:{where}:{self._versions[ANY]}"
        return f"billing:sealed{KEPT_FORMAT}:{part}:{where}:{self._versions[SEALED]}"

    @cached_property
    def _found(self) -> dict[str, Any]:
        """The kept parts a view reads, in one round trip: the live part (with the month's
        closed sums per instance) and the sealed lines; a part not found is rated and kept
        when first asked for (the sealed sums per instance, only then)."""
        return cache.get_many([self._key(part) for part in ("live", "lines")])

    def _kept(self, key: str, compute: Callable[[], T], timeout: int = KEPT_TTL) -> T:
        found = self._found.get(key)
        if found is None and key not in self._found:
            found = self._found[key] = cache.get(key)
        if found is None:
            found = compute()
            cache.set(key, found, timeout=timeout)
        return found

    def _sealed(self, what: str, rate: Callable[..., list[T]]) -> list[T]:
        """`rate` of the sealed part, as kept (rated if not)."""
        if self.cutoff <= self.month.start:
            return []  # the month began today: nothing is sealed yet
        key = self._key(what)
        # Closed intervals that start before the cutoff end by it: `now` changes nothing.
        where = Q(start__lt=self.cutoff, end__isnull=False)
        return self._kept(key, lambda: rate(**self._period, now=self.cutoff, where=where))

    @cached_property
    def _live(self) -> LivePart | None:
        """Today's part as kept until the organization's usage next changes; None where it
        is rated by the database on every read instead: on SQLite (which rounds seconds its own
        way) and at a `now` before some of it (a clock set back)."""
        if connection.vendor != "postgresql":
            return None
        live = self._kept(self._key("live"), self._rate_live)
        if live.latest is not None and self.now <= live.latest:
            return None  # rated() counts only what starts before `now`
        return live

    @cached_property
    def _spot(self) -> rating.SpotRows:
        """The spot prices of the open preemptible intervals' offers, read on every view (one
        query, none without such intervals): the market moves them without any usage written."""
        assert self._live is not None
        return rating.spot_rows_for_open(self._live.open, start=self.month.start)

    def _rate_live(self) -> LivePart:
        today_closed = Q(start__gte=self.cutoff, end__isnull=False)
        # Closed intervals stand as they are: rated as of the month's end, they are whole.
        closed: dict[str, Any] = {**self._period, "now": self.month.end, "where": today_closed}
        latest = UsageInterval.objects.filter(
            Q(start__gte=self.cutoff) | Q(end__isnull=True), organization_id=self.organization_id
        ).aggregate(latest=Max("start"))["latest"]
        sums = rating.instance_sums(**closed) + self._sealed("instances", rating.instance_sums)
        return LivePart(
            lines=rating.line_day_rows(**closed),
            closed=rating.instance_totals(sums),
            open=rating.open_interval_rows(
                organization_id=self.organization_id, before=self.month.end
            ),
            latest=latest,
            first=first_usage(self.organization_id),
        )

    @cached_property
    def _open(self) -> tuple[list[dict], list[rating.InstanceSums]]:
        """The live part's open intervals rated now (read only where there is a live part)."""
        assert self._live is not None
        return rating.rate_open(
            self._live.open,
            start=self.month.start,
            end=self.month.end,
            now=self.now,
            spot=self._spot,
        )

    def _in_parts(self, what: str, rate: Callable[..., list[T]]) -> list[T]:
        """`rate` of the whole month: the live part (kept, its open intervals rated now; or
        rated by the database) plus the sealed part as kept."""
        live = self._live
        if live is None:
            where = Q(start__gte=self.cutoff) | Q(end__isnull=True)
            rows = rate(**self._period, now=self.now, where=where)
        else:
            rows = cast(list[T], live.lines + self._open[0])  # what `rate` gives for lines
        return rows + self._sealed(what, rate)

    @cached_property
    def _lines_and_per_day(self) -> tuple[list[rating.Line], dict[date, Decimal]]:
        return rating.lines_and_per_day_of(self._in_parts("lines", rating.line_day_rows))

    @property
    def lines(self) -> list[rating.Line]:
        return self._lines_and_per_day[0]

    @property
    def per_day(self) -> dict[date, Decimal]:
        return self._lines_and_per_day[1]

    @property
    def spend(self) -> Decimal:
        return rating.total(self.lines)

    @cached_property
    def _instance_totals(self) -> dict[int, list]:
        """Each instance's sums over the month (`rating.instance_totals`): the kept closed
        sums plus the open intervals rated now, or the parts rated by the database."""
        live = self._live
        if live is None:
            return rating.instance_totals(self._in_parts("instances", rating.instance_sums))
        totals = live.closed  # this view's own copy, read from the cache
        for instance_id, running, stopped, price_seconds in self._open[1]:
            found = totals.get(instance_id)
            if found is None:
                totals[instance_id] = [running, stopped, price_seconds]
            else:
                found[0] += running
                found[1] += stopped
                found[2] += price_seconds
        return totals

    def per_instance(self, limit: int | None = None) -> tuple[list[rating.InstanceUsage], int]:
        """Each instance's usage, most expensive first: the first `limit` (all if None), and
        how many instances have usage."""
        return rating.per_instance_ranked(self._instance_totals, limit=limit)

    @property
    def first_usage(self) -> datetime | None:
        """When the organization's usage began (any month), as kept with the live part."""
        if self._live is None:
            return first_usage(self.organization_id)
        return self._live.first

    @property
    def run_rate(self) -> Decimal:
        """What the open intervals cost per hour now."""
        if self.now >= self.month.end or self._live is None:
            return rating.hourly_run_rate(organization_id=self.organization_id, now=self.now)
        rate = Decimal(0)
        for _id, *line, _gpus, began in self._live.open:  # the LINE_FIELDS, in their order
            if began > self.now:
                continue
            price = None
            if line[rating.KIND] == UsageKind.PREEMPTIBLE:  # the spot price in force, if any
                offer = (line[rating.REGION_ID], line[rating.TYPE_ID])
                price = rating.spot_price_at(self._spot.get(offer, []), self.now)
            rate += line[rating.UNIT_PRICE] if price is None else price
        return rate


def first_usage(organization_id: int) -> datetime | None:
    """The start of the organization's first usage interval (one query, by index)."""
    return (
        UsageInterval.objects.filter(organization_id=organization_id)
        .order_by("start")
        .values_list("start", flat=True)
        .first()
    )


def month_usage(*, organization_id: int, month: Month, now: datetime) -> MonthUsage:
    return MonthUsage(organization_id=organization_id, month=month, now=now)


def month_spend(*, organization_id: int, month: Month, now: datetime) -> Decimal:
    """What the month's usage costs so far, as its lines round it (`rating.total`)."""
    return month_usage(organization_id=organization_id, month=month, now=now).spend
