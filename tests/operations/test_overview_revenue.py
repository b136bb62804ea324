"""The overview's revenue kept between views (`portal.operations.revenue`): what starts before
today summed once for the whole fleet, today's part rated at each view, and the figures always
exactly those of billing's rating of each month at once."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from portal.billing.models import UsageInterval
from portal.billing.money import cents
from portal.billing.periods import Month
from portal.billing.rating import rated
from portal.instances.models import InstanceEvent
from portal.market.models import SpotPrice
from portal.operations.history import fleet_history
from portal.operations.revenue import (
    FleetRevenue,
    fleet_revenue,
    kept_price_seconds,
    kept_price_seconds_by_organization,
)
from portal.operations.selectors import operator_overview
from tests.billing.conftest import at, sync, timeline
from tests.billing.conftest import catalog as billing_catalog
from tests.billing.conftest import clock as billing_clock
from tests.billing.conftest import make_instance as billing_make_instance
from tests.billing.test_usage import spot_prices
from tests.factories import OrganizationFactory

# Billing's priced catalog and fixed clock (the operator's conftest has a catalog of its own).
catalog = billing_catalog
clock = billing_clock
make_instance = billing_make_instance


def whole_months(now) -> FleetRevenue:
    """What rating each month at once says (billing's `rated()` over the month): the reference."""
    this = Month.of(now)
    last = this.previous()

    def rate(month):
        return rated(UsageInterval.objects.all(), start=month.start, end=month.end, now=now)

    per_organization = rate(this).values("organization_id").annotate(s=Sum("price_seconds"))
    return FleetRevenue(
        this_month={row["organization_id"]: row["s"] for row in per_organization.order_by()},
        last_month=rate(last).aggregate(s=Sum("price_seconds"))["s"] or Decimal(0),
    )


def usage_queries(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "billing_usageinterval" in q["sql"]]


@pytest.fixture
def fleet(team, make_instance, catalog):
    """Three organizations over February and March: a box running since February 20th, one
    stopped and started, a preemptible one at spot prices interrupted, one that ran a single
    afternoon, and a preemptible one running since yesterday."""
    other, third = OrganizationFactory(), OrganizationFactory()
    spot_prices(
        catalog,
        catalog.us_east,
        ("2026-03-01 00:00:00", "2026-03-14 20:00:00", "0.9100"),
        ("2026-03-14 20:00:00", None, "1.0731"),
    )
    always = make_instance(team.organization, name="always-on")
    timeline(always, ("2026-02-20 08:00:00", "running"))
    churn = make_instance(other, name="churn", instance_type=catalog.h100_8x)
    timeline(
        churn,
        ("2026-03-03 10:00:00", "running"),
        ("2026-03-06 18:30:00", "stopped"),
        ("2026-03-09 07:15:00", "running"),
    )
    spot = make_instance(other, name="spot", preemptible=True)
    timeline(spot, ("2026-03-04 00:00:00", "running"), ("2026-03-14 22:10:05", "interrupted"))
    once = make_instance(third, name="once", region=catalog.eu_west)
    timeline(
        once,
        ("2026-03-11 13:00:00", "running"),
        ("2026-03-11 17:45:10", "terminating"),
        ("2026-03-11 17:45:20", "terminated"),
    )
    since_yesterday = make_instance(third, name="since-yesterday", preemptible=True)
    timeline(since_yesterday, ("2026-03-14 18:00:00", "running"))
    instances = (always, churn, spot, once, since_yesterday)
    for instance in instances:
        sync(instance)
    return instances


def test_the_kept_revenue_equals_rating_each_month_at_once(fleet, clock):
    with CaptureQueriesContext(connection) as cold:
        first = fleet_revenue(now=clock())
    with CaptureQueriesContext(connection) as warm:
        again = fleet_revenue(now=clock())

    assert first == again == whole_months(clock())
    assert len(first.this_month) == 3 and first.last_month > 0
    # The second view rates today's part only: the earlier days' intervals (the open ones as
    # their unit prices summed per start) and last month's are kept.
    assert 0 < len(usage_queries(warm)) < len(usage_queries(cold))
    before_today = '"start" < \'2026-03-15 00:00:00'
    assert not any(before_today in sql for sql in usage_queries(warm))
    assert any(before_today in sql for sql in usage_queries(cold))


def test_the_overview_shows_the_kept_figures_to_the_cent(fleet, clock):
    overview = operator_overview(now=clock())
    reference = whole_months(clock())

    assert overview.revenue_this_month == cents(reference.this_month_total / Decimal(3600))
    assert overview.revenue_last_month == cents(reference.last_month / Decimal(3600))
    ranked = sorted(reference.this_month.items(), key=lambda item: (-item[1], item[0]))
    assert [(s["id"], s["spend"]) for s in overview.top_spenders] == [
        (pk, cents(amount / Decimal(3600))) for pk, amount in ranked
    ]


def test_open_intervals_move_with_the_clock_between_views(fleet, clock):
    fleet_revenue(now=clock())
    # Fractions of a second round as the database rounds them (half to even).
    for moment in ("18:00:00", "18:00:00.5", "18:00:01.5", "18:00:02.499999", "18:00:03.700001"):
        clock.set(f"2026-03-15 {moment}")
        assert fleet_revenue(now=clock()) == whole_months(clock())


def test_a_state_change_metered_today_shows_on_the_next_view(fleet, team, make_instance, clock):
    always, churn, *_ = fleet
    started_today = make_instance(team.organization, name="today")
    timeline(started_today, ("2026-03-15 09:00:00", "running"))
    sync(started_today)
    before = fleet_revenue(now=clock())

    timeline(started_today, ("2026-03-15 11:00:00", "stopped"))
    timeline(churn, ("2026-03-15 11:30:00", "stopped"))  # open since midnight's re-sync
    for instance in (started_today, churn):
        sync(instance)
    after = fleet_revenue(now=clock())

    assert after == whole_months(clock()) != before


def test_a_state_change_recorded_late_for_an_earlier_day_shows_on_the_next_view(fleet, clock):
    _, churn, *_ = fleet
    before = fleet_revenue(now=clock())

    # Reconciliation learns that churn had in fact stopped on the 12th (a day kept as summed).
    InstanceEvent.objects.create(
        instance=churn, at=at("2026-03-12 09:00:00"), from_state="running", to_state="stopped"
    )
    sync(churn)
    after = fleet_revenue(now=clock())

    assert after == whole_months(clock())
    assert after.this_month[churn.organization_id] < before.this_month[churn.organization_id]


def test_usage_written_outside_metering_is_seen_on_the_next_view(fleet, catalog, clock):
    always, *_ = fleet
    before = fleet_revenue(now=clock())

    UsageInterval.objects.create(  # a correction for February entered by hand
        instance=always,
        organization_id=always.organization_id,
        instance_type=catalog.h100_1x,
        region=catalog.us_east,
        gpus=1,
        kind="on_demand",
        start=at("2026-02-10 10:00:00"),
        end=at("2026-02-10 11:00:00"),
        unit_price=Decimal("2.49"),
    )
    after = fleet_revenue(now=clock())

    assert after == whole_months(clock())
    assert after.last_month - before.last_month == Decimal("2.49") * 3600


def test_the_market_moving_shows_on_the_next_view_without_usage_written(fleet, catalog, clock):
    first = fleet_revenue(now=clock())

    SpotPrice.objects.filter(region=catalog.us_east, valid_until__isnull=True).update(
        valid_until=at("2026-03-15 12:20:00")
    )
    spot_prices(catalog, catalog.us_east, ("2026-03-15 12:20:00", None, "1.2500"))
    clock.set("2026-03-15 12:30:00")
    second = fleet_revenue(now=clock())

    assert second == whole_months(clock()) != first


def test_across_a_month_boundary_the_figures_still_add_up(fleet, clock):
    clock.set("2026-03-31 23:00:00")
    for instance in fleet:  # the nightly re-sync of the month's last day
        sync(instance)
    assert fleet_revenue(now=clock()) == whole_months(clock())
    march = fleet_revenue(now=clock()).this_month_total

    clock.set("2026-04-01 02:00:00")  # April, before the re-sync split the open pieces
    early = fleet_revenue(now=clock())
    assert early == whole_months(clock())
    assert early.last_month > march  # March's last hour added

    for instance in fleet:
        sync(instance)
    assert fleet_revenue(now=clock()) == whole_months(clock()) == early


def test_a_places_revenue_over_30_days_is_kept_and_equals_rating_the_window(
    fleet, team, make_instance, catalog, clock
):
    """The chart's revenue: a window that begins and ends in the middle of a day."""
    _, churn, *_ = fleet
    early = make_instance(team.organization, name="early")  # rated in the window's first day
    timeline(early, ("2026-02-13 10:00:00", "running"), ("2026-02-13 14:00:00", "stopped"))
    sync(early)
    stale = make_instance(team.organization, name="stale")
    UsageInterval.objects.create(  # open since before the window, never re-synced
        instance=stale,
        organization=team.organization,
        instance_type=catalog.h100_1x,
        region=catalog.us_east,
        gpus=1,
        kind="on_demand",
        start=at("2026-02-01 08:00:00"),
        end=None,
        unit_price=Decimal("2.49"),
    )
    place = UsageInterval.objects.filter(
        region__code="us-east-1", instance_type__gpu_model__code="h100"
    )

    def read_twice() -> dict[int, Decimal]:
        """The window's sums as kept (read twice: rated, then kept), checked against rating."""
        now = clock()
        start = now - timedelta(days=30)
        window = {"start": start, "end": now, "now": now}
        first, again = (
            kept_price_seconds_by_organization(place, name="test", **window) for _ in "12"
        )
        reference = rated(place, **window).values("organization_id")
        assert first == again
        assert first == {
            row["organization_id"]: row["s"]
            for row in reference.annotate(s=Sum("price_seconds")).order_by()
        }
        total = kept_price_seconds(place, name="test", **window)
        assert total == kept_price_seconds(place, name="test", **window) == sum(first.values())
        history = fleet_history(region="us-east-1", gpu_model="h100", range_key="30d", now=now)
        assert history.revenue == cents(total / Decimal(3600))
        return first

    for moment in ("12:00:00", "12:00:00.5", "18:30:01.5", "23:59:59.999999"):
        clock.set(f"2026-03-15 {moment}")
        read_twice()
    clock.set("2026-03-17 09:00:00")  # two days on, nothing re-synced: open since the 15th
    before = read_twice()

    # Reconciliation learns that churn had in fact stopped on the 12th (a day kept as summed).
    InstanceEvent.objects.create(
        instance=churn, at=at("2026-03-12 09:00:00"), from_state="running", to_state="stopped"
    )
    sync(churn)
    after = read_twice()
    assert after[churn.organization_id] < before[churn.organization_id]


def test_today_is_kept_too_until_usage_is_written(team, make_instance, catalog, clock):
    """With no open preemptible interval, a second view asks the database nothing of usage:
    today's intervals are kept as well (the open ones rated in memory as the clock moves), and
    usage metered today, or a view at an earlier clock, are rated again."""
    always = make_instance(team.organization, name="always-on")
    timeline(always, ("2026-02-20 08:00:00", "running"))
    today = make_instance(OrganizationFactory(), name="today", instance_type=catalog.h100_8x)
    timeline(
        today,
        ("2026-03-15 09:00:00", "running"),
        ("2026-03-15 10:00:00.4", "stopped"),
        ("2026-03-15 11:00:00", "running"),
    )
    for instance in (always, today):
        sync(instance)
    first = fleet_revenue(now=clock())
    with CaptureQueriesContext(connection) as warm:
        again = fleet_revenue(now=clock())
    assert usage_queries(warm) == []
    assert first == again == whole_months(clock())

    for moment in ("12:00:00.5", "12:00:01.5", "13:17:02.499999", "17:59:59.700001"):
        clock.set(f"2026-03-15 {moment}")
        with CaptureQueriesContext(connection) as warm:
            moved = fleet_revenue(now=clock())
        assert usage_queries(warm) == []
        assert moved == whole_months(clock())

    clock.set("2026-03-15 11:30:00")  # earlier than the clock of what is kept
    assert fleet_revenue(now=clock()) == whole_months(clock())

    clock.set("2026-03-15 18:00:00")
    before = fleet_revenue(now=clock())
    timeline(today, ("2026-03-15 16:00:00", "stopped"))
    sync(today)
    after = fleet_revenue(now=clock())
    assert after == whole_months(clock()) != before


def test_preemptible_usage_is_kept_and_rated_at_the_spot_prices_of_each_view(
    team, make_instance, catalog, clock
):
    """Preemptible machines running since yesterday and since this morning, and one
    interrupted today: a second view asks the database nothing of usage, and the market moving
    (without usage written) shows at the next view, to the second."""
    spot_prices(
        catalog,
        catalog.us_east,
        ("2026-03-14 00:00:00", "2026-03-15 09:30:00", "0.9100"),
        ("2026-03-15 10:00:00", None, "1.0731"),  # after a gap: the catalog's price
    )
    since_yesterday = make_instance(team.organization, name="since-yesterday", preemptible=True)
    timeline(since_yesterday, ("2026-03-14 18:00:00", "running"))
    other = OrganizationFactory()
    interrupted = make_instance(other, name="interrupted", preemptible=True)
    timeline(
        interrupted,
        ("2026-03-15 08:00:00.4", "running"),
        ("2026-03-15 10:15:00", "interrupted"),
    )
    morning = make_instance(other, name="morning", preemptible=True)
    timeline(morning, ("2026-03-15 10:30:00.6", "running"))
    for instance in (since_yesterday, interrupted, morning):
        sync(instance)

    first = fleet_revenue(now=clock())
    with CaptureQueriesContext(connection) as warm:
        again = fleet_revenue(now=clock())
    assert usage_queries(warm) == []
    assert first == again == whole_months(clock())
    assert set(first.this_month) == {team.organization.pk, other.pk}

    SpotPrice.objects.filter(region=catalog.us_east, valid_until__isnull=True).update(
        valid_until=at("2026-03-15 12:20:00")
    )
    spot_prices(catalog, catalog.us_east, ("2026-03-15 12:20:00", None, "1.2500"))
    for moment in ("12:30:00.5", "13:00:01.5", "17:59:59.700001"):
        clock.set(f"2026-03-15 {moment}")
        with CaptureQueriesContext(connection) as warm:
            moved = fleet_revenue(now=clock())
        assert usage_queries(warm) == []
        assert moved == whole_months(clock()) != first


def test_open_intervals_at_any_fraction_of_a_second_stay_exact_as_the_fleet_changes(
    team, make_instance, catalog, clock
):
    """Instances launched at odd microseconds (one at exactly half a second) in three
    organizations, launches and terminations today, the clock moving by fractions of a second
    and on to the next day: at every view the month's figures, each organization's and a
    place's 30 days are billing's rating's, to the last digit."""
    organizations = [team.organization, OrganizationFactory(), OrganizationFactory()]
    running = []
    for i in range(12):
        instance = make_instance(
            organizations[i % 3], instance_type=catalog.h100_8x if i % 4 == 0 else None
        )
        fraction = "500000" if i == 5 else f"{(i * 137_911) % 1_000_000:06d}"
        launched = f"2026-{'02-27' if i == 0 else f'03-{i:02d}'} 0{i % 10}:1{i % 6}:0{i % 7}"
        timeline(instance, (f"{launched}.{fraction}", "running"))
        sync(instance)
        running.append(instance)
    place = UsageInterval.objects.filter(
        region__code="us-east-1", instance_type__gpu_model__code="h100"
    )

    def exact() -> FleetRevenue:
        now = clock()
        revenue = fleet_revenue(now=now)
        assert revenue == fleet_revenue(now=now) == whole_months(now)  # rated, then kept
        window = {"start": now - timedelta(days=30), "end": now, "now": now}
        reference = rated(place, **window).aggregate(s=Sum("price_seconds"))["s"]
        assert kept_price_seconds(place, name="exact", **window) == reference
        assert kept_price_seconds(place, name="exact", **window) == reference
        return revenue

    for moment in ("12:00:00", "12:00:00.5", "12:00:01.5", "12:00:02.499999", "12:00:03.7"):
        clock.set(f"2026-03-15 {moment}")
        exact()

    UsageInterval.objects.create(  # entered by hand today, to end after the clock
        instance=running[1],
        organization_id=running[1].organization_id,
        instance_type=catalog.h100_1x,
        region=catalog.us_east,
        gpus=1,
        kind="on_demand",
        start=at("2026-03-15 00:00:00.3"),
        end=at("2026-03-15 13:00:00.7"),
        unit_price=Decimal("2.4900"),
    )
    launched_today = make_instance(organizations[1], name="launched-today")
    timeline(launched_today, ("2026-03-15 12:10:00.250001", "running"))
    sync(launched_today)
    clock.set("2026-03-15 12:20:00.750001")  # the launch's start and the clock: a tie
    before = exact()

    timeline(
        running[3],
        ("2026-03-15 12:15:00.1", "terminating"),
        ("2026-03-15 12:15:09.9", "terminated"),
    )
    timeline(launched_today, ("2026-03-15 12:18:00.5", "terminated"))
    for instance in (running[3], launched_today):
        sync(instance)
    after = exact()
    assert after.this_month[organizations[0].pk] < before.this_month[organizations[0].pk]

    for moment in ("2026-03-15 23:59:59.999999", "2026-03-16 00:00:00.5", "2026-03-16 09:41:07.3"):
        clock.set(moment)
        exact()
    for instance in running:  # the night's re-sync splits the open pieces at midnight
        sync(instance)
    exact()

    overview = operator_overview(now=clock())
    reference = whole_months(clock())
    assert overview.revenue_this_month == cents(reference.this_month_total / Decimal(3600))
