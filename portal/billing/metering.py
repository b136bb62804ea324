"""From an instance's timeline to billed intervals: pure functions, no database.

The timeline is read in the order of the events' time (`at`, then id): a state lasts from its
event to the next one. Running time (running, and stopping and rebooting, which still hold the
GPUs) is billed at the on-demand or preemptible price; stopped time at the catalog's stopped
price (the reserved disk); pending, provisioning and starting are free, and nothing is billed
after the first final state (terminated, failed, interrupted), whatever comes later.

Boundaries are whole seconds (floored). Pieces are split at every UTC midnight and at every
price change, so that each piece has one unit price and one day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

from portal.billing.periods import next_midnight

# What makes a piece of usage the same as a stored interval (`Piece.key`, `UsageInterval.key`,
# and metering's rows read as tuples): one definition for all of them.
interval_key = attrgetter("start", "end", "kind", "unit_price", "price_id", "currency")

RUNNING_STATES = frozenset({"running", "stopping", "rebooting"})
STOPPED_STATES = frozenset({"stopped"})
FINAL_STATES = frozenset({"terminated", "failed", "interrupted"})


@dataclass(frozen=True)
class Transition:
    at: datetime
    to_state: str


@dataclass(frozen=True)
class PricePoint:
    """A catalog price of the instance type, in force from `valid_from`."""

    id: int | None
    valid_from: datetime
    on_demand: Decimal
    preemptible: Decimal
    stopped: Decimal
    currency: str

    @classmethod
    def of(cls, price: Any) -> PricePoint:
        """The point of a catalog `Price` row."""
        return cls(
            id=price.pk,
            valid_from=price.valid_from,
            on_demand=price.on_demand_hourly,
            preemptible=price.preemptible_hourly,
            stopped=price.stopped_hourly,
            currency=price.currency,
        )


@dataclass(frozen=True)
class Piece:
    start: datetime
    end: datetime | None  # None: the state is still going on
    kind: str
    unit_price: Decimal
    price_id: int | None
    currency: str

    def key(self) -> tuple:
        return interval_key(self)


def whole_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def billed_kind(state: str, *, preemptible: bool) -> str | None:
    if state in RUNNING_STATES:
        return "preemptible" if preemptible else "on_demand"
    if state in STOPPED_STATES:
        return "stopped"
    return None


def billed_stretches(
    transitions: Iterable[Transition], *, preemptible: bool
) -> list[tuple[datetime, datetime | None, str]]:
    """(start, end or None, kind) for each billed stretch of the timeline, in order.

    `transitions` must be sorted by time (ties in the order they were recorded).
    """
    stretches: list[tuple[datetime, datetime | None, str]] = []
    kind: str | None = None
    since: datetime | None = None
    for transition in transitions:
        at = whole_second(transition.at)
        following = billed_kind(transition.to_state, preemptible=preemptible)
        if following is not None and following == kind:
            continue  # running → stopping: billed the same way, one stretch
        if kind is not None and since is not None and at > since:
            stretches.append((since, at, kind))
        if transition.to_state in FINAL_STATES:
            return stretches
        kind = following
        since = at
    if kind is not None and since is not None:
        stretches.append((since, None, kind))
    return stretches


def price_at(prices: Sequence[PricePoint], moment: datetime) -> PricePoint | None:
    """The price in force at `moment`: the latest whose `valid_from` is not after it."""
    found = None
    for price in prices:  # sorted by valid_from
        if price.valid_from <= moment:
            found = price
        else:
            break
    return found


def unit_price(price: PricePoint | None, kind: str) -> Decimal:
    if price is None:
        return Decimal("0")
    return {"on_demand": price.on_demand, "preemptible": price.preemptible}.get(kind, price.stopped)


def pieces(
    transitions: Iterable[Transition],
    *,
    preemptible: bool,
    prices: Sequence[PricePoint],
    now: datetime,
    default_currency: str,
) -> list[Piece]:
    """The billed pieces of a timeline as of `now`.

    An ongoing stretch is split at the midnights and price changes up to `now`; its last piece
    stays open (end None) and is rated up to the moment it is read.
    """
    prices = sorted(prices, key=lambda p: p.valid_from)
    now = whole_second(now)
    result: list[Piece] = []
    for start, end, kind in billed_stretches(transitions, preemptible=preemptible):
        # A closed stretch is cut strictly inside; an ongoing one up to and including `now`
        # (its open piece then starts at the last boundary passed).
        def inside(moment: datetime, start: datetime = start, end: datetime | None = end) -> bool:
            return start < moment < end if end is not None else start < moment <= now

        cuts = {whole_second(p.valid_from) for p in prices if inside(whole_second(p.valid_from))}
        midnight = next_midnight(start)
        while inside(midnight):
            cuts.add(midnight)
            midnight = next_midnight(midnight)
        bounds = [start, *sorted(cuts)]
        for index, piece_start in enumerate(bounds):
            piece_end = bounds[index + 1] if index + 1 < len(bounds) else end
            price = price_at(prices, piece_start)
            result.append(
                Piece(
                    start=piece_start,
                    end=piece_end,
                    kind=kind,
                    unit_price=unit_price(price, kind),
                    price_id=price.id if price else None,
                    currency=price.currency if price else default_currency,
                )
            )
    return result
