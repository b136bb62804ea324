"""A month's usage as the billing pages read it: the sealed days kept, today rated live.

Rating a month scans every interval of it: ~14,000 for an organization with 1,000 instances by
the 24th, far too many for every view of the billing page, the dashboard or a budget check. But
intervals never cross a UTC midnight, and a closed interval that starts before today's midnight
changes only when metering rewrites it (a state change recorded late, the split of a running
piece after midnight, a month closed by its invoice). So a month is rated in two parts:

- sealed: the closed intervals starting before today's UTC midnight (or before the month's end,
  for a past month). Their sums do not depend on the time they are read at. They are rated once
  (one GROUP BY per question) and kept in the cache under the organization's usage version,
  which `usage_changed` replaces whenever metering writes such an interval;
- live: today's intervals and every open one, rated at `now` on every read (about one row per
  running or stopped instance).

The parts' raw sums (seconds, the exact Σ seconds × price) are added before the one rounding per
line, day and instance, so the figures are exactly those of `rating` over the whole month; the
tests compare them. Invoices are issued from `rating` directly.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cached_property
from typing import TypeVar

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q

from portal.billing import rating
from portal.billing.periods import Month

T = TypeVar("T")
SEALED_TTL = 26 * 3600  # a sealed part's key names its day: it is not read after tomorrow
SEALED_FORMAT = 1  # in the key: a release that changes the kept rows' shape never reads old ones


def _version_key(organization_id: int) -> str:
    return f"billing:usage-version:{organization_id}"


def usage_version(organization_id: int) -> str:
    """The organization's usage version: a fresh token after every change to sealed usage."""
    key = _version_key(organization_id)
    version = cache.get(key)
    if version is None:
        cache.add(key, uuid.uuid4().hex, timeout=None)
        # Another reader may have added first: take the one kept. If the cache keeps nothing,
        # a token of our own means nothing is reused.
        version = cache.get(key) or uuid.uuid4().hex
    return version


def usage_changed(organization_id: int) -> None:
    """Sealed usage of the organization was written: its kept sums are not read again.

    Twice: now, for what runs later in the writer's own transaction (a budget check after
    metering), and on commit, because another reader may meanwhile have kept the sums of the
    rows as they were before the commit under the version of now.
    """

    def retire() -> None:
        cache.set(_version_key(organization_id), uuid.uuid4().hex, timeout=None)

    retire()
    transaction.on_commit(retire)


def midnight(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def sealed_before(month: Month, now: datetime) -> datetime:
    """Where the month's sealed part ends: today's UTC midnight, or the month's end if sooner."""
    return min(midnight(now), month.end)


class MonthUsage:
    """A month's usage at `now`, each figure read when first asked for: one query of the live
    part (today and the open intervals) plus the sealed part as kept (rated when it is not).
    Each figure is rounded once, as `rating` rounds it."""

    def __init__(self, *, organization_id: int, month: Month, now: datetime):
        self.organization_id = organization_id
        self.month = month
        self.now = now
        self.cutoff = sealed_before(month, now)
        self._period = {"organization_id": organization_id, "start": month.start, "end": month.end}

    def _in_parts(self, what: str, rate: Callable[..., list[T]]) -> list[T]:
        """`rate` of the live part, plus that of the sealed part as kept (rated if not)."""
        rows = rate(
            **self._period, now=self.now, where=Q(start__gte=self.cutoff) | Q(end__isnull=True)
        )
        if self.cutoff <= self.month.start:
            return rows  # the month began today: nothing is sealed yet
        version = usage_version(self.organization_id)
        key = f"billing:sealed{SEALED_FORMAT}:{what}:{self.organization_id}:{self.month.key}"
        key += f":{self.cutoff:%Y%m%d}:{version}"
        sealed = cache.get(key)
        if sealed is None:
            # Closed intervals that start before the cutoff end by it: `now` changes nothing.
            sealed = rate(
                **self._period, now=self.cutoff, where=Q(start__lt=self.cutoff, end__isnull=False)
            )
            cache.set(key, sealed, timeout=SEALED_TTL)
        return rows + sealed

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

    def per_instance(self, limit: int | None = None) -> tuple[list[rating.InstanceUsage], int]:
        """Each instance's usage, most expensive first: the first `limit` (all if None), and
        how many instances have usage."""
        return rating.per_instance_of(
            self._in_parts("instances", rating.instance_sums), limit=limit
        )

    @property
    def run_rate(self) -> Decimal:
        """What the open intervals cost per hour now."""
        return rating.hourly_run_rate(organization_id=self.organization_id, now=self.now)


def month_usage(*, organization_id: int, month: Month, now: datetime) -> MonthUsage:
    return MonthUsage(organization_id=organization_id, month=month, now=now)


def month_spend(*, organization_id: int, month: Month, now: datetime) -> Decimal:
    """What the month's usage costs so far, as its lines round it (`rating.total`)."""
    return month_usage(organization_id=organization_id, month=month, now=now).spend
