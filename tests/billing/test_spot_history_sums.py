"""Rating from the sums each spot price row carries (its offer's history before it): the edges.

Each case is checked against a count second by second in Python: every second at the spot
price in force, the catalog's preemptible price where no spot price is (before the first one,
in a gap of a loaded history)."""

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import IntegrityError, transaction

from portal.billing import rating
from portal.billing.periods import Month
from portal.lib.errors import ApplicationError
from portal.market import services as market
from portal.market.models import PriceReason, SpotMarket, SpotPrice
from tests.billing.conftest import at, sync, timeline
from tests.billing.conftest import spot_row as _row
from tests.factories import UserFactory

MARCH = Month(2026, 3)
CATALOG_SPOT = Decimal("1.29")  # the catalog's preemptible price of the 1x H100


def _history(catalog) -> list[SpotPrice]:
    return list(
        SpotPrice.objects.filter(region=catalog.us_east, instance_type=catalog.h100_1x).order_by(
            "valid_from"
        )
    )


def _by_the_second(rows: list[SpotPrice], start: datetime, end: datetime) -> Decimal:
    """Σ price × seconds, one second at a time (the catalog's price where no row is)."""
    total = Decimal(0)
    moment = start
    while moment < end:
        price = CATALOG_SPOT
        for row in rows:
            if row.valid_from <= moment and (row.valid_until is None or moment < row.valid_until):
                price = row.price
        total += price
        moment += timedelta(seconds=1)
    return total


def _rated(organization, start: datetime, end: datetime) -> Decimal:
    """The exact Σ seconds × price the rating gives the month (before rounding)."""
    rows = rating.line_day_rows(
        organization_id=organization.pk,
        start=MARCH.start,
        end=MARCH.end,
        now=at("2026-04-01 02:00:00"),
    )
    assert sum(int(row["total_seconds"]) for row in rows) == int((end - start).total_seconds())
    return sum((row["total_price_seconds"] for row in rows), Decimal(0))


@pytest.fixture
def run(team, make_instance):
    """A preemptible instance running from `start` to `end` (one usage interval a UTC day)."""

    def running(start: str, end: str) -> tuple[datetime, datetime]:
        instance = make_instance(team.organization, preemptible=True, name=f"spot-{start}")
        timeline(instance, (start, "running"), (end, "interrupted"))
        sync(instance)
        return at(start), at(end)

    return running


def test_sums_are_the_history_before_each_row(catalog):
    rows = market.spot_price_history_add(
        rows=[
            _row(catalog, "2026-03-02 10:00:00", "2026-03-02 10:00:30", "2.0000"),
            _row(catalog, "2026-03-02 10:00:30", "2026-03-02 11:00:00", "0.5000"),
            _row(catalog, "2026-03-02 11:00:00", None, "1.2345"),
        ]
    )
    assert [(r.seconds_before, r.price_seconds_before) for r in _history(catalog)] == [
        (0, Decimal("0")),
        (30, Decimal("60.0000")),
        (30 + 3570, Decimal("60") + 3570 * Decimal("0.5")),
    ]
    assert [r.pk for r in rows] == [r.pk for r in _history(catalog)]


def test_an_interval_before_any_price_is_at_the_catalog_price(team, catalog, run):
    market.spot_price_history_add(rows=[_row(catalog, "2026-03-05 12:00:00", None, "0.7000")])
    start, end = run("2026-03-05 08:00:00", "2026-03-05 11:30:00")
    assert _rated(team.organization, start, end) == (3 * 3600 + 1800) * CATALOG_SPOT


def test_an_interval_across_the_first_price_is_at_the_catalog_price_until_then(team, catalog, run):
    rows = market.spot_price_history_add(
        rows=[
            _row(catalog, "2026-03-05 12:00:00", "2026-03-05 12:07:13", "0.7000"),
            _row(catalog, "2026-03-05 12:07:13", None, "2.1000"),
        ]
    )
    start, end = run("2026-03-05 11:59:59", "2026-03-05 12:10:00")
    expected = _by_the_second(rows, start, end)
    assert expected == CATALOG_SPOT + 433 * Decimal("0.7") + 167 * Decimal("2.1")
    assert _rated(team.organization, start, end) == expected


def test_a_price_change_exactly_at_an_interval_boundary(team, catalog, run):
    rows = market.spot_price_history_add(
        rows=[
            _row(catalog, "2026-03-06 09:00:00", "2026-03-06 10:00:00", "3.0000"),
            _row(catalog, "2026-03-06 10:00:00", "2026-03-06 10:20:00", "1.0000"),
            _row(catalog, "2026-03-06 10:20:00", None, "0.4000"),
        ]
    )
    # Starts when the second price starts, ends when the third starts: all at 1.0000.
    start, end = run("2026-03-06 10:00:00", "2026-03-06 10:20:00")
    assert _rated(team.organization, start, end) == 1200 * Decimal("1.0000")
    assert _by_the_second(rows, start, end) == 1200 * Decimal("1.0000")


def test_an_interval_inside_one_price_and_one_after_a_gap(team, catalog, run):
    """A loaded history may have a gap (and end with a closed row): no spot price there."""
    rows = market.spot_price_history_add(
        rows=[
            _row(catalog, "2026-03-07 09:00:00", "2026-03-07 10:00:00", "3.0000"),
            _row(catalog, "2026-03-07 11:00:00", "2026-03-07 12:00:00", "0.2500"),
        ]
    )
    start, end = run("2026-03-07 09:30:00", "2026-03-07 12:30:05")
    expected = (
        1800 * Decimal(3) + 3600 * CATALOG_SPOT + 3600 * Decimal("0.25") + 1805 * CATALOG_SPOT
    )
    assert _by_the_second(rows, start, end) == expected
    assert _rated(team.organization, start, end) == expected


def test_a_back_dated_price_updates_the_sums_after_it_and_the_rating(team, catalog, run):
    market.spot_price_history_add(
        rows=[
            _row(catalog, "2026-03-08 09:00:00", "2026-03-08 10:00:00", "3.0000"),
            _row(catalog, "2026-03-08 11:00:00", None, "0.5000"),
        ]
    )
    start, end = run("2026-03-08 08:00:00", "2026-03-08 12:00:00")
    # Later, the price of the gap is loaded (an import of what it was).
    market.spot_price_history_add(
        rows=[_row(catalog, "2026-03-08 10:00:00", "2026-03-08 11:00:00", "9.0000")]
    )
    rows = _history(catalog)
    assert [(r.seconds_before, r.price_seconds_before) for r in rows] == [
        (0, Decimal(0)),
        (3600, Decimal(3 * 3600)),
        (7200, Decimal(3 * 3600 + 9 * 3600)),
    ]
    expected = 3600 * CATALOG_SPOT + 3600 * Decimal(3) + 3600 * Decimal(9) + 3600 * Decimal("0.5")
    assert _by_the_second(rows, start, end) == expected
    assert _rated(team.organization, start, end) == expected


def test_a_price_overlapping_the_history_is_refused_and_nothing_is_written(catalog):
    market.spot_price_history_add(
        rows=[
            _row(catalog, "2026-03-08 09:00:00", "2026-03-08 10:00:00", "3.0000"),
            _row(catalog, "2026-03-08 10:00:00", None, "0.5000"),
        ]
    )
    before = [(r.pk, r.seconds_before, r.price_seconds_before) for r in _history(catalog)]
    for rows in (
        [_row(catalog, "2026-03-08 09:30:00", "2026-03-08 09:45:00", "1.0000")],  # inside one
        [_row(catalog, "2026-03-08 08:00:00", "2026-03-08 09:00:01", "1.0000")],  # into one
        [_row(catalog, "2026-03-09 08:00:00", None, "1.0000")],  # after the one in force
    ):
        with pytest.raises(ApplicationError, match="overlaps"):
            market.spot_price_history_add(rows=rows)
    with pytest.raises(ApplicationError, match="whole second"):
        market.spot_price_history_add(
            rows=[
                SpotPrice(
                    region=catalog.us_east,
                    instance_type=catalog.h100_1x,
                    price=Decimal(1),
                    valid_from=at("2026-03-01 00:00:00") + timedelta(microseconds=5),
                    valid_until=at("2026-03-01 01:00:00"),
                    reason=PriceReason.MARKET,
                )
            ]
        )
    after = [(r.pk, r.seconds_before, r.price_seconds_before) for r in _history(catalog)]
    assert after == before


def test_a_row_without_its_sums_is_refused_by_the_database(catalog):
    with pytest.raises(IntegrityError), transaction.atomic():
        SpotPrice.objects.create(
            region=catalog.us_east,
            instance_type=catalog.h100_1x,
            price=Decimal(1),
            valid_from=at("2026-03-01 00:00:00"),
            reason=PriceReason.MARKET,
        )


def test_prices_the_market_records_carry_their_sums(team, catalog, run):
    """The market's own changes (staff setting a price, several times, one of them with a
    frozen clock that would go back in time) rate like a history loaded at once."""
    offer = SpotMarket.objects.create(
        region=catalog.us_east,
        instance_type=catalog.h100_1x,
        floor=Decimal("0.10"),
        ceiling=Decimal("5.00"),
        max_step=Decimal("1.00"),
    )
    staff = UserFactory(email="ops@backfill.example", is_staff=True)
    moments = ["2026-03-10 08:00:00", "2026-03-10 08:13:07", "2026-03-10 09:40:00"]
    for moment, price in zip(moments, ["0.9000", "2.2500", "0.3300"], strict=True):
        with time_machine.travel(at(moment), tick=False):
            market.spot_price_set(market=offer, price=price, user=staff)
    # A change stamped before the one in force starts a second after it instead.
    with time_machine.travel(at("2026-03-10 09:00:00"), tick=False):
        market.spot_price_set(market=offer, price="4.0000", user=staff)
    rows = _history(catalog)
    assert [r.valid_from for r in rows][-1] == at("2026-03-10 09:40:01")
    running = 0, Decimal(0)
    for row in rows:
        assert (row.seconds_before, row.price_seconds_before) == running
        running = row.sums_after()
    start, end = run("2026-03-10 07:30:00", "2026-03-10 10:00:00")
    assert _rated(team.organization, start, end) == _by_the_second(rows, start, end)


def test_a_period_that_ends_when_the_market_first_priced_the_offer(team, catalog, run):
    """Rated up to the first spot price (the lookups left out) and from it on: the catalog's
    price, then the spot price, and the two parts add up to the whole."""
    market.spot_price_history_add(rows=[_row(catalog, "2026-03-05 12:00:00", None, "0.7000")])
    run("2026-03-05 08:00:00", "2026-03-05 14:00:00")
    first = at("2026-03-05 12:00:00")

    def rated(start: datetime, end: datetime) -> Decimal:
        rows = rating.line_day_rows(
            organization_id=team.organization.pk, start=start, end=end, now=MARCH.end
        )
        return sum((row["total_price_seconds"] for row in rows), Decimal(0))

    assert rated(MARCH.start, first) == 4 * 3600 * CATALOG_SPOT
    assert rated(first, MARCH.end) == 2 * 3600 * Decimal("0.7")
    assert rated(MARCH.start, MARCH.end) == 4 * 3600 * CATALOG_SPOT + 2 * 3600 * Decimal("0.7")
