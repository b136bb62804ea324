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
from typing import TypeVar

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q

from portal.billing import rating
from portal.billing.periods import Month

SEALED_TTL = 26 * 3600  # a sealed part's key names its day: it is not read after tomorrow
SEALED_FORMAT = 1  # in the key: a release that changes the kept rows' shape never reads old ones
T = TypeVar("T")


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


def _in_parts(
    what: str,
    rate: Callable[..., list[T]],
    *,
    organization_id: int,
    month: Month,
    now: datetime,
) -> list[T]:
    """`rate(where=…)` of the live part, plus that of the sealed part as kept (rated if not)."""
    cutoff = sealed_before(month, now)
    period = {"organization_id": organization_id, "start": month.start, "end": month.end}
    rows = rate(**period, now=now, where=Q(start__gte=cutoff) | Q(end__isnull=True))
    if cutoff <= month.start:
        return rows  # the month began today: nothing is sealed yet
    version = usage_version(organization_id)
    key = f"billing:sealed{SEALED_FORMAT}:{what}:{organization_id}:{month.key}:{cutoff:%Y%m%d}"
    key += f":{version}"
    sealed = cache.get(key)
    if sealed is None:
        sealed = rate(**period, now=now, where=Q(start__lt=cutoff, end__isnull=False))
        cache.set(key, sealed, timeout=SEALED_TTL)
    return rows + sealed


def lines_and_per_day(
    *, organization_id: int, month: Month, now: datetime
) -> tuple[list[rating.Line], dict[date, Decimal]]:
    """The month's invoice lines and spend per UTC day so far (`rating.lines_and_per_day`)."""
    rows = _in_parts(
        "lines", rating.line_day_rows, organization_id=organization_id, month=month, now=now
    )
    return rating.lines_and_per_day_of(rows)


def month_spend(*, organization_id: int, month: Month, now: datetime) -> Decimal:
    """What the month's usage costs so far, as its lines round it (`rating.total`)."""
    lines, _ = lines_and_per_day(organization_id=organization_id, month=month, now=now)
    return rating.total(lines)


def per_instance(
    *, organization_id: int, month: Month, now: datetime, limit: int | None = None
) -> tuple[list[rating.InstanceUsage], int]:
    """The month's usage of each instance so far, most expensive first, the first `limit` of
    them (all if None), and how many instances have usage (`rating.per_instance_of`)."""
    sums = _in_parts(
        "instances", rating.instance_sums, organization_id=organization_id, month=month, now=now
    )
    return rating.per_instance_of(sums, limit=limit)
