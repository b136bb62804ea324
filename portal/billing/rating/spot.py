"""Preemptible usage at each spot price: the slices of an interval between price changes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db.models import (
    F,
    Q,
    Value,
)
from django.db.models.functions import Coalesce, Greatest, Least

from portal.billing.models import UsageKind
from portal.billing.rating.by_line import Line
from portal.billing.rating.intervals import (
    EpochSeconds,
    market_priced_before,
    of_organization,
    rated,
)

if TYPE_CHECKING:
    pass


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
    if not market_priced_before(min(end, now)):
        return []  # no price row starts before the period's end: none overlaps it
    intervals = rated(
        of_organization(organization_id, where).filter(kind=UsageKind.PREEMPTIBLE),
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
