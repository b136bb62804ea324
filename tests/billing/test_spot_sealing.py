"""Spot prices sealed into usage when it closes: rating a month adds a column instead of
looking the price history up, and a change to the history re-seals what it reaches."""

import threading
import time
from datetime import datetime
from decimal import Decimal

import pytest
import time_machine
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from portal.billing import rating
from portal.billing.models import UsageInterval, UsageKind
from portal.billing.periods import Month
from portal.market import services as market
from portal.market.locks import spot_history_read_lock
from portal.market.models import SpotMarket, SpotPrice
from tests.billing.conftest import at, sync, timeline
from tests.billing.conftest import spot_row as _row

MARCH = Month(2026, 3)
CATALOG_SPOT = Decimal("1.29")  # the catalog's preemptible price of the 1x H100


def _month_total(organization) -> Decimal:
    rows = rating.line_day_rows(
        organization_id=organization.pk,
        start=MARCH.start,
        end=MARCH.end,
        now=at("2026-04-01 02:00:00"),
    )
    return sum((row["total_price_seconds"] for row in rows), Decimal(0))


@pytest.fixture
def priced(catalog):
    market.spot_price_history_add(
        rows=[
            _row(catalog, "2026-03-10 09:00:00", "2026-03-10 10:00:00", "0.5000"),
            _row(catalog, "2026-03-10 10:00:00", None, "2.0000"),
        ]
    )


@pytest.fixture
def offer(catalog):
    """The 1x H100's market in us-east-1, wide enough for any price the tests set."""
    return SpotMarket.objects.create(
        region=catalog.us_east,
        instance_type=catalog.h100_1x,
        floor=Decimal("0.10"),
        ceiling=Decimal("5.00"),
        max_step=Decimal("5.00"),
    )


@pytest.fixture
def ran(team, make_instance, priced):
    instance = make_instance(team.organization, preemptible=True, name="spot")
    timeline(instance, ("2026-03-10 08:00:00", "running"), ("2026-03-10 12:00:00", "interrupted"))
    sync(instance)
    return instance


def test_a_closed_preemptible_interval_carries_its_spot_sum(team, ran):
    (interval,) = UsageInterval.objects.filter(instance=ran, kind=UsageKind.PREEMPTIBLE)
    # 08:00–09:00 at the catalog's 1.29 (no spot price yet), 09:00–10:00 at 0.50, then 2.00.
    expected = 3600 * CATALOG_SPOT + 3600 * Decimal("0.5") + 7200 * Decimal(2)
    assert interval.sealed_price_seconds == expected
    assert _month_total(team.organization) == expected


def test_rating_a_month_of_sealed_usage_reads_no_price_history(team, ran):
    with CaptureQueriesContext(connection) as queries:
        total = _month_total(team.organization)
    assert total == 3600 * CATALOG_SPOT + 3600 * Decimal("0.5") + 7200 * Decimal(2)
    rating_queries = [q["sql"] for q in queries if "billing_usageinterval" in q["sql"]]
    assert rating_queries
    assert not [sql for sql in rating_queries if "market_spotprice" in sql]


def test_an_open_interval_is_still_rated_from_the_price_history(team, make_instance, priced):
    instance = make_instance(team.organization, preemptible=True, name="still-running")
    timeline(instance, ("2026-03-10 11:00:00", "running"))
    with time_machine.travel(at("2026-03-10 11:30:00"), tick=False):
        sync(instance)
    (interval,) = UsageInterval.objects.filter(instance=instance)
    assert interval.end is None and interval.sealed_price_seconds is None
    rows = rating.line_day_rows(
        organization_id=team.organization.pk,
        start=MARCH.start,
        end=MARCH.end,
        now=at("2026-03-10 11:30:00"),
    )
    assert sum((row["total_price_seconds"] for row in rows), Decimal(0)) == 1800 * Decimal(2)


def test_a_price_history_loaded_back_in_time_re_seals_the_usage_it_reaches(team, catalog, ran):
    # Staff load what the price was before 09:00 (an import): the interval is re-sealed.
    market.spot_price_history_add(
        rows=[_row(catalog, "2026-03-10 07:00:00", "2026-03-10 09:00:00", "0.2500")]
    )
    (interval,) = UsageInterval.objects.filter(instance=ran, kind=UsageKind.PREEMPTIBLE)
    expected = 3600 * Decimal("0.25") + 3600 * Decimal("0.5") + 7200 * Decimal(2)
    assert interval.sealed_price_seconds == expected
    assert _month_total(team.organization) == expected


def test_a_price_recorded_inside_usage_already_sealed_re_seals_it(team, ran, offer, staff):
    """A market change stamped before the end of usage that metering sealed first (the two
    racing): the usage is billed at the new price from the change on."""
    with time_machine.travel(at("2026-03-10 11:00:00"), tick=False):
        market.spot_price_set(market=offer, price="4.0000", user=staff)
    assert _month_total(team.organization) == (
        3600 * CATALOG_SPOT + 3600 * Decimal("0.5") + 3600 * Decimal(2) + 3600 * Decimal(4)
    )


@pytest.mark.django_db(transaction=True)
def test_a_price_change_waits_for_usage_being_sealed_from_the_history(catalog, offer, staff):
    """Metering holds its offer's history shared while it seals; a change to the history
    waits until that commits, so it re-seals what was sealed instead of missing it."""
    market.spot_price_history_add(rows=[_row(catalog, "2026-03-10 09:00:00", None, "0.5000")])
    sealing, release = threading.Event(), threading.Event()
    changed_at: list[datetime] = []

    def metering() -> None:
        try:
            with transaction.atomic():
                spot_history_read_lock(catalog.h100_1x.pk)
                sealing.set()
                release.wait(10)
        finally:
            connection.close()

    def price_change() -> None:
        try:
            market.spot_price_set(market=offer, price="3.0000", user=staff)
            changed_at.append(datetime.now())
        finally:
            connection.close()

    holder = threading.Thread(target=metering)
    holder.start()
    assert sealing.wait(10)
    writer = threading.Thread(target=price_change)
    writer.start()
    time.sleep(1)
    assert writer.is_alive() and not changed_at  # waiting for the sealer to commit
    release.set()
    holder.join(10)
    writer.join(10)
    assert changed_at
    assert SpotPrice.objects.filter(price=Decimal("3.0000")).exists()
