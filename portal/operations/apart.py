"""Intervals priced apart from their unit price, rated in memory as `rated()` rates them.

The overview keeps today's intervals until usage is written (`portal.operations.revenue`),
but the market moves the price of preemptible usage without any usage being written. Those
intervals (preemptible ones, and any with a sealed spot sum), few against the fleet, are kept
as rows and rated at each view against the spot prices then in force: one short query of the
market's rows (none without the market), where `rated()` cost an ORM query per period.
tests/operations/test_overview_revenue.py compares the two.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from portal.billing.models import UsageKind
from portal.billing.periods import midnight
from portal.billing.rating import (
    market_priced_before,
    spot_integral_at,
    spot_rows,
)
from portal.billing.rating.live import epoch_seconds

# What is kept of each interval, after its organization (0 when not by organization).
APART_FIELDS = (
    "start",
    "end",
    "unit_price",
    "kind",
    "region_id",
    "instance_type_id",
    "sealed_price_seconds",
)
# (organization, start, end, unit price, kind, region id, type id, sealed price seconds)
ApartRow = tuple[int, datetime, datetime | None, Decimal, str, int, int, Decimal | None]


def price_seconds_apart(
    rows: Sequence[ApartRow], *, start: datetime, end: datetime, now: datetime
) -> dict[int, Decimal]:
    """Σ `price_seconds` per organization of `rows` rated over [start, end) at `now`, as
    `rated()` rates them: those with at least a second inside the period (a closed interval
    never crosses a UTC midnight), clipped to it, an open one counted up to `now`. Once the
    market has priced any offer before the period's end (at the clock), a sealed interval the
    period holds whole is at its sealed sum, and a preemptible one at the spot prices in force
    during its seconds (the catalog's price where there were none)."""
    upper = min(end, now)
    if upper <= start:
        return {}
    floor = midnight(start)
    inside = [
        row
        for row in rows
        if row[1] < upper and (row[2] is None or (row[1] >= floor and row[2] > start))
    ]
    if not inside:
        return {}
    at_spot_prices = any(
        row[4] == UsageKind.PREEMPTIBLE or row[7] is not None for row in inside
    ) and market_priced_before(upper)
    # Each row's price: its sealed sum when the period holds it whole, else its seconds at its
    # unit price, plus, for a preemptible one, what the spot prices added.
    looked_up = []
    sums: defaultdict[int, Decimal] = defaultdict(Decimal)
    for row in inside:
        sealed = _sealed_whole(row, start, upper) if at_spot_prices else None
        if sealed is not None:
            sums[row[0]] += sealed
            continue
        began = row[1] if row[1] > start else start
        ended = min(row[2] if row[2] is not None else now, end)
        sums[row[0]] += epoch_seconds(began, ended) * row[3]
        if at_spot_prices and row[4] == UsageKind.PREEMPTIBLE:
            looked_up.append((row, began, ended))
    if looked_up:
        prices = spot_rows(
            {(row[5], row[6]) for row, _, _ in looked_up},
            since=min(began for _, began, _ in looked_up),
        )
        for row, began, ended in looked_up:
            offer = prices.get((row[5], row[6]))
            if offer:
                sums[row[0]] += spot_integral_at(offer, row[3], ended) - spot_integral_at(
                    offer, row[3], began
                )
    return dict(sums)


def _sealed_whole(row: ApartRow, start: datetime, upper: datetime) -> Decimal | None:
    """The interval's sealed sum if the period (up to the clock) holds it whole: `rated()`'s
    condition for reading it; else None."""
    whole = row[1] >= start and row[2] is not None and row[2] <= upper
    return row[7] if whole else None
