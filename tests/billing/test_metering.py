"""Metering: from an instance's timeline to billed intervals, to the second, never twice."""

from decimal import Decimal

import pytest

from portal.billing import rating
from portal.billing.models import UsageInterval
from portal.billing.periods import Month
from portal.instances.models import InstanceEvent
from tests.billing.conftest import at, price_change, sync, timeline

MARCH = Month(2026, 3)
APRIL = Month(2026, 4)


def lines(organization, month=MARCH, now="2026-05-01 00:00:00"):
    return rating.lines(
        organization_id=organization.pk, start=month.start, end=month.end, now=at(now)
    )


def intervals(instance):
    return list(
        UsageInterval.objects.filter(instance=instance)
        .order_by("start")
        .values_list("start", "end", "kind", "unit_price")
    )


def by_kind(lines_):
    return {line.kind: line for line in lines_}


def test_a_run_across_a_price_change_is_split_and_billed_per_second(
    team, catalog, make_instance, clock
):
    instance = make_instance(team.organization)
    price_change(catalog.h100_1x, "2026-03-10 12:00:00", "2.99", "1.49", "0.02")
    timeline(
        instance,
        ("2026-03-10 09:58:00", "provisioning"),
        ("2026-03-10 10:00:00", "running"),
        ("2026-03-10 14:00:30", "terminating"),
        ("2026-03-10 14:00:41", "terminated"),
    )
    clock.set("2026-03-15 00:00:00")
    sync(instance)

    assert intervals(instance) == [
        (at("2026-03-10 10:00:00"), at("2026-03-10 12:00:00"), "on_demand", Decimal("2.49")),
        (at("2026-03-10 12:00:00"), at("2026-03-10 14:00:30"), "on_demand", Decimal("2.99")),
    ]
    result = lines(team.organization)
    assert [(line.unit_price, line.seconds, line.amount) for line in result] == [
        (Decimal("2.4900"), 7200, Decimal("4.98")),  # 2 h × 2.49
        (Decimal("2.9900"), 7230, Decimal("6.00")),  # 7230 s × 2.99 / 3600 = 6.0049…
    ]


def test_stop_and_start_bills_running_and_stopping_at_the_running_price_and_stopped_at_disk(
    team, make_instance, clock
):
    instance = make_instance(team.organization)
    timeline(
        instance,
        ("2026-03-10 10:00:00", "running"),
        ("2026-03-10 11:00:00", "stopping"),  # still holds the GPUs: billed as running
        ("2026-03-10 11:00:40", "stopped"),  # disk only, 0.02/h
        ("2026-03-10 13:00:00", "starting"),  # free
        ("2026-03-10 13:01:30", "running"),
        ("2026-03-10 13:30:00", "rebooting"),  # billed as running
        ("2026-03-10 13:31:00", "running"),
        ("2026-03-10 14:00:00", "terminating"),  # free
        ("2026-03-10 14:00:20", "terminated"),
    )
    sync(instance)

    result = by_kind(lines(team.organization))
    assert result["on_demand"].seconds == 3640 + 3510
    assert result["on_demand"].amount == Decimal("4.95")  # 7150 × 2.49 / 3600 = 4.9454…
    assert result["stopped"].seconds == 7160
    assert result["stopped"].amount == Decimal("0.04")  # 7160 × 0.02 / 3600 = 0.0397…
    assert result["stopped"].gpu_seconds == 0


def test_a_run_across_the_month_boundary_is_billed_in_each_month(team, make_instance, clock):
    instance = make_instance(team.organization)
    timeline(
        instance,
        ("2026-03-31 22:00:00", "running"),
        ("2026-04-01 00:30:00", "stopping"),
        ("2026-04-01 00:30:00", "stopped"),
        ("2026-04-01 01:00:00", "terminating"),
        ("2026-04-01 01:00:05", "terminated"),
    )
    clock.set("2026-04-02 00:00:00")
    sync(instance)

    assert intervals(instance)[:2] == [
        (at("2026-03-31 22:00:00"), at("2026-04-01 00:00:00"), "on_demand", Decimal("2.49")),
        (at("2026-04-01 00:00:00"), at("2026-04-01 00:30:00"), "on_demand", Decimal("2.49")),
    ]
    march = by_kind(lines(team.organization, MARCH))
    april = by_kind(lines(team.organization, APRIL))
    assert march["on_demand"].seconds == 7200 and march["on_demand"].amount == Decimal("4.98")
    # 1800 s × 2.49 / 3600 = 1.245: half up to 1.25 (half-even would say 1.24)
    assert april["on_demand"].seconds == 1800 and april["on_demand"].amount == Decimal("1.25")
    assert april["stopped"].seconds == 1800
    assert "stopped" not in march


def test_an_interruption_stops_billing_at_the_reclaim_second(team, make_instance, clock):
    spot = make_instance(team.organization, preemptible=True)
    timeline(spot, ("2026-03-10 10:00:00", "running"))
    clock.set("2026-03-10 10:40:00")
    sync(spot)  # while it runs: one open interval
    assert intervals(spot) == [(at("2026-03-10 10:00:00"), None, "preemptible", Decimal("1.29"))]

    # The worker records a stop request late, then the interruption, stamped at the reclaim
    # second (earlier than the stop it follows); nothing after the reclaim is billed.
    timeline(spot, ("2026-03-10 10:46:00", "stopping"))
    InstanceEvent.objects.create(
        instance=spot,
        at=at("2026-03-10 10:45:17.400000"),
        from_state="stopping",
        to_state="interrupted",
    )
    clock.set("2026-03-10 11:00:00")
    sync(spot)

    assert intervals(spot) == [
        (at("2026-03-10 10:00:00"), at("2026-03-10 10:45:17"), "preemptible", Decimal("1.29"))
    ]
    (line,) = lines(team.organization)
    assert line.kind == "preemptible"
    assert line.seconds == 2717
    assert line.amount == Decimal("0.97")  # 2717 × 1.29 / 3600 = 0.9736…


def test_an_open_interval_is_rated_up_to_now_and_split_at_each_midnight(team, make_instance, clock):
    instance = make_instance(team.organization)
    timeline(instance, ("2026-03-10 20:00:00", "running"))
    clock.set("2026-03-12 01:00:00")
    sync(instance)

    assert [(start, end) for start, end, *_ in intervals(instance)] == [
        (at("2026-03-10 20:00:00"), at("2026-03-11 00:00:00")),
        (at("2026-03-11 00:00:00"), at("2026-03-12 00:00:00")),
        (at("2026-03-12 00:00:00"), None),
    ]
    (line,) = lines(team.organization, now="2026-03-12 01:00:00")
    assert line.seconds == 29 * 3600
    per_day = rating.per_day(
        organization_id=team.organization.pk,
        start=MARCH.start,
        end=MARCH.end,
        now=at("2026-03-12 01:00:00"),
    )
    assert [(day.day, amount) for day, amount in per_day.items()] == [
        (10, Decimal("9.96")),
        (11, Decimal("59.76")),
        (12, Decimal("2.49")),
    ]


def test_syncing_twice_changes_nothing(team, make_instance, clock):
    instance = make_instance(team.organization)
    timeline(
        instance,
        ("2026-03-10 10:00:00", "running"),
        ("2026-03-10 11:00:00", "stopping"),
        ("2026-03-10 11:01:00", "stopped"),
    )
    sync(instance)
    first = list(UsageInterval.objects.filter(instance=instance).values_list("pk", "start", "end"))
    sync(instance)
    sync(instance)
    assert (
        list(UsageInterval.objects.filter(instance=instance).values_list("pk", "start", "end"))
        == first
    )


def test_a_late_backdated_event_replaces_what_was_metered_without_billing_twice(
    team, make_instance, clock
):
    instance = make_instance(team.organization)
    timeline(instance, ("2026-03-10 10:00:00", "running"))
    clock.set("2026-03-10 12:00:00")
    sync(instance)
    (before,) = lines(team.organization, now="2026-03-10 12:00:00")
    assert before.seconds == 7200

    # Reconciliation finds, at 12:00, that the machine was lost at 10:30 and backdates it.
    InstanceEvent.objects.create(
        instance=instance, at=at("2026-03-10 10:30:00"), from_state="running", to_state="failed"
    )
    clock.set("2026-03-10 12:05:00")
    sync(instance)
    sync(instance)

    (after,) = lines(team.organization, now="2026-03-10 12:05:00")
    assert after.seconds == 1800
    assert intervals(instance) == [
        (at("2026-03-10 10:00:00"), at("2026-03-10 10:30:00"), "on_demand", Decimal("2.49"))
    ]


def test_events_that_are_not_state_changes_do_not_affect_billing(team, make_instance, clock):
    instance = make_instance(team.organization, preemptible=True)
    timeline(instance, ("2026-03-10 10:00:00", "running"))
    InstanceEvent.objects.create(
        instance=instance, at=at("2026-03-10 10:10:00"), message="Reclaim at 10:12."
    )
    timeline(instance, ("2026-03-10 10:12:00", "interrupted"))
    sync(instance)
    (line,) = lines(team.organization)
    assert line.seconds == 720


def test_nothing_is_billed_before_running_or_after_a_final_state(team, make_instance, clock):
    instance = make_instance(team.organization)
    timeline(
        instance,
        ("2026-03-10 10:00:00", "pending"),
        ("2026-03-10 10:00:01", "provisioning"),
        ("2026-03-10 10:05:00", "failed"),
    )
    # A confused late report after the final state is ignored.
    InstanceEvent.objects.create(
        instance=instance, at=at("2026-03-10 10:06:00"), from_state="failed", to_state="running"
    )
    sync(instance)
    assert intervals(instance) == []
    assert lines(team.organization) == []


def test_a_sync_after_the_month_is_invoiced_does_not_touch_the_invoiced_month(
    team, make_instance, clock
):
    from portal.billing import services

    instance = make_instance(team.organization)
    timeline(instance, ("2026-03-31 23:00:00", "running"))
    clock.set("2026-03-31 23:30:00")
    sync(instance)  # open since 23:00 on March 31
    clock.set("2026-04-01 02:00:00")
    invoice = services.invoice_issue(organization=team.organization, month=MARCH)
    assert invoice.subtotal == Decimal("2.49")
    # The timeline learns late that the machine had stopped at 23:15 in March: March is
    # invoiced and stays as billed; April is billed from its first second, once.
    timeline(instance, ("2026-03-31 23:15:00", "stopping"), ("2026-03-31 23:15:00", "stopped"))
    clock.set("2026-04-01 03:00:00")
    sync(instance)
    march = UsageInterval.objects.filter(instance=instance, start__lt=APRIL.start)
    assert list(march.values_list("start", "end")) == [
        (at("2026-03-31 23:00:00"), at("2026-04-01 00:00:00"))
    ]
    (april,) = lines(team.organization, APRIL, now="2026-04-01 03:00:00")
    assert (april.kind, april.seconds) == ("stopped", 3 * 3600)


@pytest.mark.parametrize("sync_at", ["2026-03-10 10:30:00", "2026-03-10 13:00:00", None])
def test_one_second_is_billed_once_whenever_the_sync_runs(team, make_instance, clock, sync_at):
    instance = make_instance(team.organization)
    timeline(instance, ("2026-03-10 10:00:00", "running"))
    if sync_at:
        clock.set(sync_at)
        sync(instance)
    timeline(instance, ("2026-03-10 11:00:00", "stopping"), ("2026-03-10 11:00:00", "stopped"))
    clock.set("2026-03-10 12:00:00")
    if sync_at:
        sync(instance)
    timeline(instance, ("2026-03-10 12:00:00", "terminating"))
    clock.set("2026-03-11 00:00:00")
    sync(instance)
    result = by_kind(lines(team.organization))
    assert result["on_demand"].seconds == 3600
    assert result["stopped"].seconds == 3600


def test_rating_sees_an_open_interval_begun_before_the_period_and_no_older_closed_one(
    team, make_instance, clock
):
    """Closed intervals never cross a midnight, so rating bounds `start` from below (the
    midnight before the period); an open one not re-synced since a midnight still counts."""
    old = make_instance(team.organization)
    timeline(
        old,
        ("2026-01-10 10:00:00", "running"),
        ("2026-01-10 12:00:00", "terminating"),
        ("2026-01-10 12:00:10", "terminated"),
    )
    clock.set("2026-01-11 00:00:00")
    sync(old)
    ongoing = make_instance(team.organization)
    timeline(ongoing, ("2026-03-31 23:00:00", "running"))
    clock.set("2026-03-31 23:30:00")
    sync(ongoing)  # one open interval, begun in March

    (line,) = lines(team.organization, APRIL, now="2026-04-01 01:00:00")
    assert line.seconds == 3600  # April's first hour of the open interval, nothing of January
    # A period starting mid-day still sees the interval that began that morning.
    (line,) = rating.lines(
        organization_id=team.organization.pk,
        start=at("2026-01-10 11:00:00"),
        end=at("2026-01-11 00:00:00"),
        now=at("2026-04-01 01:00:00"),
    )
    assert line.seconds == 3600  # 11:00 to 12:00; terminating is not billed


def test_metering_again_with_nothing_new_writes_nothing_but_its_meter(team, make_instance, clock):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal.billing.services import invoice_issue

    instance = make_instance(team.organization)
    timeline(instance, ("2026-02-20 10:00:00", "running"))
    sync(instance)
    invoice_issue(organization=team.organization, month=Month(2026, 2), issued_by=None)
    sync(instance)  # closes February's piece at the invoiced boundary, once

    with CaptureQueriesContext(connection) as captured:
        sync(instance)

    writes = [
        q["sql"].split(" ")[0] + " " + q["sql"].split('"')[1]
        for q in captured.captured_queries
        if q["sql"].startswith(("INSERT", "UPDATE", "DELETE"))
    ]
    assert writes == ["INSERT billing_instancemeter"]  # one upsert of how far it has read
    ends = [end for _, end, _, _ in intervals(instance)]
    assert at("2026-03-01 00:00:00") in ends and ends[-1] is None  # split at the month, still on
