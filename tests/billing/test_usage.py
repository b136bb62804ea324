"""The billing pages' month usage: sealed days kept between views, today rated live, and the
figures always exactly those of rating the whole month at once."""

from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.billing import rating, usage
from portal.billing.models import UsageInterval
from portal.billing.periods import Month
from portal.instances.models import InstanceEvent
from portal.market.models import PriceReason, SpotPrice
from portal.market.services import spot_price_history_add
from tests.billing.conftest import at, sync, timeline

MARCH = Month(2026, 3)
FEBRUARY = Month(2026, 2)


def whole_month(organization, month, now):
    """What rating the whole month in one scan says: the reference."""
    kwargs = {"organization_id": organization.pk, "start": month.start, "end": month.end}
    lines, per_day = rating.lines_and_per_day(**kwargs, now=now)
    return lines, per_day, rating.per_instance(**kwargs, now=now)


def as_read(organization, month, now):
    """What the billing pages read: the sealed part kept, the live part rated now."""
    used = usage.month_usage(organization_id=organization.pk, month=month, now=now)
    instances, count = used.per_instance()
    assert count == len(instances)
    return used.lines, used.per_day, instances


def usage_queries(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "billing_usageinterval" in q["sql"]]


def fleet(team, make_instance):
    """A few weeks of March: a box running since the 2nd, one stopped and started, a
    preemptible one interrupted, and one that ran a single afternoon."""
    always = make_instance(team.organization, name="always-on")
    timeline(always, ("2026-03-02 08:00:00", "running"))
    churn = make_instance(team.organization, name="churn")
    timeline(
        churn,
        ("2026-03-03 10:00:00", "running"),
        ("2026-03-06 18:30:00", "stopped"),
        ("2026-03-09 07:15:00", "running"),
    )
    spot = make_instance(team.organization, name="spot", preemptible=True)
    timeline(
        spot,
        ("2026-03-04 00:00:00", "running"),
        ("2026-03-14 22:10:05", "interrupted"),
    )
    once = make_instance(team.organization, name="once")
    timeline(
        once,
        ("2026-03-11 13:00:00", "running"),
        ("2026-03-11 17:45:10", "terminating"),
        ("2026-03-11 17:45:20", "terminated"),
    )
    for instance in (always, churn, spot, once):
        sync(instance)
    return always, churn, spot, once


def test_the_month_as_read_equals_rating_the_whole_month_at_once(team, make_instance, clock):
    fleet(team, make_instance)
    now = clock()

    first = as_read(team.organization, MARCH, now)
    again = as_read(team.organization, MARCH, now)  # the sealed part now comes from the cache

    assert first == again == whole_month(team.organization, MARCH, now)
    lines, per_day, instances = first
    assert [line.kind for line in lines] == ["on_demand", "preemptible", "stopped"]
    assert len(per_day) == 14  # March 2nd to 15th
    assert [u.name for u in instances][0] == "always-on"
    # Running now: always-on and churn (on demand, 2.49 each); spot was interrupted.
    assert usage.month_usage(
        organization_id=team.organization.pk, month=MARCH, now=now
    ).run_rate == Decimal("4.98")


def test_a_second_view_reads_no_usage_from_the_database(team, make_instance, clock):
    fleet(team, make_instance)

    with CaptureQueriesContext(connection) as cold:
        first = as_read(team.organization, MARCH, clock())
    clock.set("2026-03-15 12:10:00")  # ten minutes on: the open intervals have grown
    with CaptureQueriesContext(connection) as warm:
        second = as_read(team.organization, MARCH, clock())

    assert usage_queries(cold)  # rated once: today's part, the sealed days
    assert usage_queries(warm) == []  # kept; the open intervals rated in memory
    assert second == whole_month(team.organization, MARCH, clock()) != first


def test_a_state_change_today_shows_on_the_next_view(team, make_instance, clock):
    always, *_ = fleet(team, make_instance)
    started_today = make_instance(team.organization, name="today")
    timeline(started_today, ("2026-03-15 09:00:00", "running"))
    sync(started_today)
    before = as_read(team.organization, MARCH, clock())

    timeline(started_today, ("2026-03-15 11:00:00", "stopped"))
    sync(started_today)
    after = as_read(team.organization, MARCH, clock())

    assert after == whole_month(team.organization, MARCH, clock())
    today = {u.name: u for u in after[2]}["today"]
    assert today.running_seconds == 7200 and today.stopped_seconds == 3600
    assert after != before


def test_a_clock_set_back_before_todays_usage_is_rated_by_the_database(team, make_instance, clock):
    fleet(team, make_instance)
    started_today = make_instance(team.organization, name="today")
    timeline(started_today, ("2026-03-15 09:00:00", "running"), ("2026-03-15 11:00:00", "stopped"))
    sync(started_today)
    as_read(team.organization, MARCH, clock())  # kept as of 12:00

    clock.set("2026-03-15 08:30:00")  # before today's start: what is kept does not apply
    assert as_read(team.organization, MARCH, clock()) == whole_month(
        team.organization, MARCH, clock()
    )


def test_the_live_part_moves_with_the_clock_while_the_sealed_part_is_kept(
    team, make_instance, clock
):
    always, *_ = fleet(team, make_instance)
    usage.month_spend(organization_id=team.organization.pk, month=MARCH, now=clock())

    clock.set("2026-03-15 18:00:00")  # six hours later, the same day: nothing re-synced
    later = as_read(team.organization, MARCH, clock())

    assert later == whole_month(team.organization, MARCH, clock())
    # Fractions of a second round as the database rounds them (half to even), to the cent.
    for moment in ("18:00:00.5", "18:00:01.5", "18:00:02.499999", "18:00:03.700001"):
        clock.set(f"2026-03-15 {moment}")
        assert as_read(team.organization, MARCH, clock()) == whole_month(
            team.organization, MARCH, clock()
        )
    spend = {u.name: u.running_seconds for u in later[2]}
    assert spend["always-on"] == int(
        (at("2026-03-15 18:00:00") - at("2026-03-02 08:00:00")).total_seconds()
    )


def test_a_state_change_recorded_late_for_an_earlier_day_shows_on_the_next_view(
    team, make_instance, clock
):
    _, churn, *_ = fleet(team, make_instance)
    before = as_read(team.organization, MARCH, clock())

    # Reconciliation learns that churn had in fact stopped on the 12th (a sealed day).
    InstanceEvent.objects.create(
        instance=churn, at=at("2026-03-12 09:00:00"), from_state="running", to_state="stopped"
    )
    sync(churn)
    after = as_read(team.organization, MARCH, clock())

    assert after == whole_month(team.organization, MARCH, clock())
    assert after != before
    assert rating.total(after[0]) < rating.total(before[0])


def test_after_midnight_the_running_day_is_sealed_and_the_figures_still_add_up(
    team, make_instance, clock
):
    instances = fleet(team, make_instance)
    as_read(team.organization, MARCH, clock())

    clock.set("2026-03-16 03:00:00")  # past midnight, before the nightly re-sync
    assert as_read(team.organization, MARCH, clock()) == whole_month(
        team.organization, MARCH, clock()
    )
    for instance in instances:  # the open pieces are split at midnight
        sync(instance)
    assert as_read(team.organization, MARCH, clock()) == whole_month(
        team.organization, MARCH, clock()
    )


def test_a_past_month_is_read_whole_from_the_kept_sums(team, make_instance, clock):
    always = make_instance(team.organization, name="february-box")
    timeline(always, ("2026-02-20 08:00:00", "running"), ("2026-03-03 08:00:00", "stopped"))
    sync(always)
    now = clock()

    first = as_read(team.organization, FEBRUARY, now)
    with CaptureQueriesContext(connection) as warm:
        again = as_read(team.organization, FEBRUARY, now)

    assert first == again == whole_month(team.organization, FEBRUARY, now)
    assert first[2][0].running_seconds == 9 * 86400 - 8 * 3600  # Feb 20 08:00 to Mar 1
    assert usage_queries(warm) == []  # the open stopped disk (billed into March) is kept too


def test_usage_written_outside_metering_is_seen_on_the_next_view(
    team, make_instance, catalog, clock
):
    always, *_ = fleet(team, make_instance)
    before = as_read(team.organization, MARCH, clock())

    UsageInterval.objects.create(  # a correction entered by hand for the 1st
        instance=always,
        organization=team.organization,
        instance_type=catalog.h100_1x,
        region=catalog.us_east,
        gpus=1,
        kind="on_demand",
        start=at("2026-03-01 10:00:00"),
        end=at("2026-03-01 11:00:00"),
        unit_price=Decimal("2.49"),
    )
    after = as_read(team.organization, MARCH, clock())

    assert after == whole_month(team.organization, MARCH, clock())
    assert rating.total(after[0]) - rating.total(before[0]) == Decimal("2.49")


def test_the_top_of_the_ranking_breaks_ties_by_name_as_the_full_ranking_does(
    team, make_instance, clock
):
    for name in ("delta", "alpha", "charlie", "bravo", "echo"):  # equal runs: equal amounts
        instance = make_instance(team.organization, name=name)
        timeline(
            instance,
            ("2026-03-05 10:00:00", "running"),
            ("2026-03-05 12:00:00", "terminating"),
            ("2026-03-05 12:00:00", "terminated"),
        )
        sync(instance)
    longer = make_instance(team.organization, name="zulu")
    timeline(longer, ("2026-03-06 10:00:00", "running"), ("2026-03-06 15:00:00", "stopped"))
    sync(longer)

    used = usage.month_usage(organization_id=team.organization.pk, month=MARCH, now=clock())
    top, count = used.per_instance(limit=3)
    everything = whole_month(team.organization, MARCH, clock())[2]

    assert count == 6
    assert [u.name for u in top] == ["zulu", "alpha", "bravo"]
    assert top == everything[:3]


def spot_prices(catalog, region, *spans: tuple[str, str | None, str]) -> list[SpotPrice]:
    """The 1x H100's spot prices in `region`: (from, until or None, price) each."""
    return spot_price_history_add(
        rows=[
            SpotPrice(
                region=region,
                instance_type=catalog.h100_1x,
                price=Decimal(price),
                valid_from=at(start),
                valid_until=at(end) if end else None,
                reason=PriceReason.MARKET,
            )
            for start, end, price in spans
        ]
    )


def test_open_preemptible_intervals_are_kept_and_rated_at_the_spot_prices_of_each_view(
    team, make_instance, catalog, clock
):
    fleet(team, make_instance)
    spot_prices(
        catalog,
        catalog.us_east,
        ("2026-03-14 20:00:00", "2026-03-15 09:30:00", "0.9100"),  # in force at midnight
        ("2026-03-15 10:00:00", "2026-03-15 11:17:13", "1.0731"),  # after a gap
        ("2026-03-15 11:17:13", None, "0.8462"),
    )
    spot_prices(
        catalog,
        catalog.eu_west,
        ("2026-03-14 10:00:00", "2026-03-14 12:00:00", "0.7000"),  # ended before today
        ("2026-03-15 09:00:00", None, "1.1000"),
    )
    since_yesterday = make_instance(team.organization, name="since-yesterday", preemptible=True)
    timeline(since_yesterday, ("2026-03-14 18:00:00", "running"))  # open from midnight
    in_the_gap = make_instance(team.organization, name="in-the-gap", preemptible=True)
    timeline(in_the_gap, ("2026-03-15 09:45:10", "running"))
    before_priced = make_instance(
        team.organization, name="eu", preemptible=True, region=catalog.eu_west
    )
    timeline(before_priced, ("2026-03-15 08:00:00", "running"))
    for instance in (since_yesterday, in_the_gap, before_priced):
        sync(instance)

    def run_rate():
        now = clock()
        kept = usage.month_usage(organization_id=team.organization.pk, month=MARCH, now=now)
        return kept.run_rate, rating.hourly_run_rate(organization_id=team.organization.pk, now=now)

    assert as_read(team.organization, MARCH, clock()) == whole_month(
        team.organization, MARCH, clock()
    )
    clock.set("2026-03-15 12:10:00.5")
    with CaptureQueriesContext(connection) as warm:
        second = as_read(team.organization, MARCH, clock())
    assert usage_queries(warm) == []  # kept: only the spot prices are read
    assert second == whole_month(team.organization, MARCH, clock())
    # Running: always-on and churn on demand, two at 0.8462 in us-east, one at 1.10 in eu-west.
    assert run_rate() == (Decimal("7.7724"), Decimal("7.7724"))

    # The market moves at 12:20 and nothing else is written: the next view has the new price.
    SpotPrice.objects.filter(region=catalog.us_east, valid_until__isnull=True).update(
        valid_until=at("2026-03-15 12:20:00")
    )
    spot_prices(catalog, catalog.us_east, ("2026-03-15 12:20:00", None, "1.2500"))
    clock.set("2026-03-15 12:30:00")
    third = as_read(team.organization, MARCH, clock())
    assert third == whole_month(team.organization, MARCH, clock()) != second
    assert run_rate() == (Decimal("8.5800"), Decimal("8.5800"))


def test_the_first_month_of_usage_is_kept_and_an_earlier_month_shows_at_once(
    team, make_instance, clock
):
    fleet(team, make_instance)
    organization_id = team.organization.pk
    first = usage.month_usage(organization_id=organization_id, month=MARCH, now=clock())
    assert first.first_usage == at("2026-03-02 08:00:00")
    with CaptureQueriesContext(connection) as warm:
        kept = usage.month_usage(organization_id=organization_id, month=MARCH, now=clock())
        assert kept.first_usage == at("2026-03-02 08:00:00")
    assert usage_queries(warm) == []  # kept with the live part

    earlier = make_instance(team.organization, name="february")
    timeline(earlier, ("2026-02-20 10:00:00", "running"), ("2026-02-20 12:00:00", "stopped"))
    sync(earlier)

    again = usage.month_usage(organization_id=organization_id, month=MARCH, now=clock())
    assert again.first_usage == at("2026-02-20 10:00:00")
    assert as_read(team.organization, MARCH, clock()) == whole_month(
        team.organization, MARCH, clock()
    )


def test_an_instance_started_after_the_sums_were_kept_joins_the_ranking_at_once(
    team, make_instance, clock
):
    fleet(team, make_instance)
    as_read(team.organization, MARCH, clock())  # kept: the month's closed sums per instance
    newcomer = make_instance(team.organization, name="newcomer")
    timeline(newcomer, ("2026-03-15 11:00:00", "running"))
    sync(newcomer)
    clock.set("2026-03-15 12:30:00")

    lines, per_day, instances = as_read(team.organization, MARCH, clock())
    assert (lines, per_day, instances) == whole_month(team.organization, MARCH, clock())
    assert {u.name: u for u in instances}["newcomer"].running_seconds == 5400
    top, count = usage.month_usage(
        organization_id=team.organization.pk, month=MARCH, now=clock()
    ).per_instance(limit=2)
    assert count == 5 and top == instances[:2]
