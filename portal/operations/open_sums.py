"""Open intervals' Σ seconds × unit price at any clock, exactly as billing rates each one,
without going over them one by one.

An open interval counts `epoch_seconds(start, until)` seconds: the microseconds between them
over a million, rounded half to even (PostgreSQL's rule, `portal.billing.rating.live`). With
both times split into whole seconds and microseconds (start = s + f, until = U + q), that is

    (U - s) + r,  where r = +1 if q - f > ½ s, -1 if f - q > ½ s, else 0,

and at exactly ½ s the even one of the two: r = ±1 when U - s is odd. So the Σ over a group
of intervals is U × Σ p - Σ s × p + Σ r × p: the first two terms are kept sums, and the last
one, for a clock's q, is the prices of the intervals whose f lies below q - ½ s minus those
above q + ½ s (two binary searches in the starts' microseconds, sorted, with their prices'
running sums), and at a tie the prices of those whose s has the other parity than U. Prices
are summed as integers (the unit prices × 10^places); the result is the same Decimal as the
sum of each interval's seconds × unit price. tests/operations/test_open_sums.py compares them.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from portal.billing.rating.live import epoch_seconds

MICROS = 1_000_000
HALF = MICROS // 2
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // _MICRO


def _compact(values: list[int]) -> Sequence[int]:
    """An array of 64-bit integers where they fit (read back from the cache as one block of
    bytes), else the list."""
    try:
        return array("q", values)
    except OverflowError:
        return values


@dataclass(frozen=True)
class OpenSums:
    """Open intervals of several groups (organizations), as (group, start, unit price) rows,
    ready to be rated up to any clock. Those that start before `clipped_before` may be
    clipped to a later period start and are rated one by one; the others as a whole.

    The others are kept in columns, in the order of their starts' microseconds past the second
    (a few arrays: quick to read back from the cache): each one's f, group (an index into
    `groups`), scaled price and whether its start's whole second is odd; and per group Σ p and
    Σ s × p. At a clock, each group's sum is U × Σ p - Σ s × p, plus the prices of the
    intervals before the first binary search's place and less those after the second's (a
    quarter of them on average)."""

    places: int  # the prices are integers × 10^-places
    groups: list[int]
    prices: list[int]  # per group: Σ p
    weighted: list[int]  # per group: Σ s × p
    fractions: Sequence[int]  # per interval, ascending: f
    members: Sequence[int]  # per interval: its group's index
    scaled: Sequence[int]  # per interval: p
    odd: Sequence[int]  # per interval: 1 where s is odd
    one_by_one: list[tuple[int, datetime, Decimal]]

    @classmethod
    def of(cls, rows: Iterable[tuple[int, datetime, Decimal]], *, clipped_before: datetime):
        rows = list(rows)
        one_by_one = [row for row in rows if row[1] < clipped_before]
        rest = [row for row in rows if row[1] >= clipped_before]
        places = max((_places(price) for _, _, price in rest), default=0)
        scale = 10**places
        index: dict[int, int] = {}
        prices: list[int] = []
        weighted: list[int] = []
        columns = []
        for group, began, price in rest:
            at = index.get(group)
            if at is None:
                at = index[group] = len(prices)
                prices.append(0)
                weighted.append(0)
            whole, fraction = divmod(_micros(began), MICROS)
            p = int(price * scale)
            prices[at] += p
            weighted[at] += whole * p
            columns.append((fraction, at, p, whole % 2))
        columns.sort()
        return cls(
            places=places,
            groups=list(index),
            prices=prices,
            weighted=weighted,
            fractions=_compact([c[0] for c in columns]),
            members=_compact([c[1] for c in columns]),
            scaled=_compact([c[2] for c in columns]),
            odd=_compact([c[3] for c in columns]),
            one_by_one=one_by_one,
        )

    def __bool__(self) -> bool:
        return bool(self.groups or self.one_by_one)

    def price_seconds(self, *, start: datetime, until: datetime) -> dict[int, Decimal]:
        """Σ seconds × unit price per group, each interval clipped to `start` and counted up to
        `until`, as `rated()` rates open intervals."""
        sums: defaultdict[int, Decimal] = defaultdict(Decimal)
        seconds_since: dict[datetime, int] = {}
        for group, began, price in self.one_by_one:
            began = max(began, start)
            seconds = seconds_since.get(began)
            if seconds is None:
                seconds = seconds_since[began] = epoch_seconds(began, until)
            sums[group] += seconds * price
        if not self.groups:
            return dict(sums)
        whole, fraction = divmod(_micros(until), MICROS)
        values = [whole * p - w for p, w in zip(self.prices, self.weighted, strict=True)]
        fractions, members, scaled, odd = self.fractions, self.members, self.scaled, self.odd
        low, high = fraction - HALF, fraction + HALF
        up, down = bisect_left(fractions, low), bisect_right(fractions, high)
        for i in range(up):  # q - f > ½ s: one second more
            values[members[i]] += scaled[i]
        for i in range(down, len(fractions)):  # f - q > ½ s: one second less
            values[members[i]] -= scaled[i]
        # Exactly half a second: to the even number, one more (or less) where U - s is odd.
        other = 1 - whole % 2
        for i in range(up, bisect_right(fractions, low, up)):
            if odd[i] == other:
                values[members[i]] += scaled[i]
        for i in range(bisect_left(fractions, high, 0, down), down):
            if odd[i] == other:
                values[members[i]] -= scaled[i]
        exponent = f"e-{self.places}"
        for group, value in zip(self.groups, values, strict=True):
            sums[group] += Decimal(f"{value}{exponent}")
        return dict(sums)


def _places(price: Decimal) -> int:
    exponent = price.as_tuple().exponent
    assert isinstance(exponent, int)  # a finite price
    return max(0, -exponent)
