"""Open intervals rated as a whole (`portal.operations.open_sums`): the same Decimal as billing's
rule applied to each interval (its seconds rounded half to even, `epoch_seconds`, × its unit
price), whatever the starts' and the clock's fractions of a second."""

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from portal.billing.rating.live import epoch_seconds
from portal.operations.open_sums import OpenSums

BASE = datetime(2026, 3, 1, tzinfo=UTC)


def one_by_one(rows, *, start, until) -> dict[int, Decimal]:
    sums: defaultdict[int, Decimal] = defaultdict(Decimal)
    for group, began, price in rows:
        sums[group] += epoch_seconds(max(began, start), until) * price
    return dict(sums)


@pytest.mark.parametrize("seed", range(8))
def test_the_sums_are_billings_rule_applied_to_each_interval(seed):
    pick = random.Random(seed)
    for _ in range(150):
        rows = [
            (
                pick.randint(1, 5),
                BASE
                + timedelta(
                    seconds=pick.randint(0, 86_400 * 10),
                    microseconds=pick.choice([0, 250_000, 500_000, pick.randint(0, 999_999)]),
                ),
                Decimal(pick.choice(["2.4900", "0.1234", "17", "3.5", "19.9200"])),
            )
            for _ in range(pick.randint(0, 40))
        ]
        clipped_before = BASE + timedelta(days=pick.randint(0, 3))
        start = BASE + timedelta(
            seconds=pick.randint(0, 86_400 * 3), microseconds=pick.randint(0, 999_999)
        )
        start = min(start, clipped_before)  # no later start clips what is rated as a whole
        until = BASE + timedelta(
            days=11,
            seconds=pick.randint(0, 86_400),
            microseconds=pick.choice([0, 500_000, pick.randint(0, 999_999)]),
        )
        if rows and pick.random() < 0.4:  # exactly half a second past some start
            began = pick.choice(rows)[1]
            until = began + timedelta(days=pick.randint(1, 5), microseconds=500_000)
        sums = OpenSums.of(rows, clipped_before=clipped_before)

        assert sums.price_seconds(start=start, until=until) == one_by_one(
            rows, start=start, until=until
        )


def test_half_a_second_rounds_to_the_even_second_either_way():
    # Starts at .5 and .0, the clock at .0 and .5: every interval is a whole number of seconds
    # and a half, rounded down where that number is even and up where it is odd.
    rows = [
        (1, BASE + timedelta(seconds=10, microseconds=500_000), Decimal("1.0000")),
        (1, BASE + timedelta(seconds=11, microseconds=500_000), Decimal("1.0000")),
        (2, BASE + timedelta(seconds=10), Decimal("2.5000")),
        (2, BASE + timedelta(seconds=11), Decimal("2.5000")),
    ]
    sums = OpenSums.of(rows, clipped_before=BASE)

    at_whole = sums.price_seconds(start=BASE, until=BASE + timedelta(seconds=20))
    assert at_whole == {1: Decimal(10 + 8), 2: Decimal("2.5") * (10 + 9)}  # 9.5→10, 8.5→8
    at_half = sums.price_seconds(
        start=BASE, until=BASE + timedelta(seconds=20, microseconds=500_000)
    )
    assert at_half == {1: Decimal(10 + 9), 2: Decimal("2.5") * (10 + 10)}  # 10.5→10, 9.5→10


def test_starts_before_the_period_count_from_its_start():
    rows = [(7, BASE + timedelta(hours=1, microseconds=1), Decimal("2.4900"))]
    sums = OpenSums.of(rows, clipped_before=BASE + timedelta(days=1))
    start = BASE + timedelta(hours=5, microseconds=600_000)

    assert sums.price_seconds(start=start, until=start + timedelta(hours=1)) == {
        7: Decimal("2.4900") * 3600
    }
