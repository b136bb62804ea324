"""The periodic tasks: which instances the metering picks up, and last month's invoices."""

from decimal import Decimal

from django.core.cache import cache
from django_celery_beat.models import PeriodicTask

from portal.billing import services, tasks
from portal.billing.models import InstanceMeter, Invoice, UsageInterval
from tests.billing.conftest import at, price_change, sync, timeline


def test_the_schedule_is_registered(db):
    schedule = {t.task: t for t in PeriodicTask.objects.filter(task__startswith="portal.billing")}
    assert set(schedule) == {
        "portal.billing.tasks.usage_sync_pending",
        "portal.billing.tasks.budgets_check",
        "portal.billing.tasks.invoices_issue_last_month",
        "portal.billing.tasks.dunning_run",
    }
    assert schedule["portal.billing.tasks.dunning_run"].interval.period == "hours"
    monthly = schedule["portal.billing.tasks.invoices_issue_last_month"].crontab
    assert (monthly.minute, monthly.hour, monthly.day_of_month) == ("0", "2", "1")
    assert str(monthly.timezone) == "UTC"


def test_metering_picks_up_new_events_only(team, make_instance, clock):
    quiet = make_instance(team.organization, name="quiet")
    busy = make_instance(team.organization, name="busy")
    timeline(quiet, ("2026-03-15 08:00:00", "running"), ("2026-03-15 09:00:00", "failed"))
    timeline(busy, ("2026-03-15 08:00:00", "running"))
    assert services.instances_needing_sync() == sorted([quiet.pk, busy.pk])
    assert tasks.usage_sync_pending() == 2
    assert services.instances_needing_sync() == []
    timeline(busy, ("2026-03-15 10:00:00", "stopping"))
    assert services.instances_needing_sync() == [busy.pk]


def test_the_sweep_reads_only_after_the_mark_of_a_run_ten_minutes_back(team, make_instance, clock):
    first = make_instance(team.organization, name="first")
    timeline(first, ("2026-03-15 08:00:00", "running"))
    assert tasks.usage_sync_pending() == 1  # no mark yet: every event is read
    InstanceMeter.objects.filter(instance=first).update(last_event_id=0)  # as if never read
    clock.set("2026-03-15 12:09:00")
    assert tasks.usage_sync_pending() == 1  # within ten minutes of the first run: read again
    InstanceMeter.objects.filter(instance=first).update(last_event_id=0)
    clock.set("2026-03-15 12:11:00")
    later = make_instance(team.organization, name="later")
    timeline(later, ("2026-03-15 12:10:30", "running"))
    assert services.instances_needing_sync() == sorted([first.pk, later.pk])
    # The first run's mark is settled: its events are not read again, the new one is.
    assert tasks.usage_sync_pending() == 1
    assert services.instances_needing_sync() == [first.pk]


def test_metering_picks_up_open_pieces_after_midnight_and_price_changes(
    team, catalog, make_instance, clock
):
    instance = make_instance(team.organization)
    timeline(instance, ("2026-03-15 08:00:00", "running"))
    sync(instance)
    assert services.instances_needing_sync() == []
    clock.set("2026-03-16 00:00:01")
    assert services.instances_needing_sync() == [instance.pk]
    sync(instance)
    assert services.instances_needing_sync() == []
    price_change(catalog.h100_1x, "2026-03-16 06:00:00", "1.99", "0.99", "0.02")
    clock.set("2026-03-16 05:59:59")
    assert services.instances_needing_sync() == []
    clock.set("2026-03-16 06:00:00")
    assert services.instances_needing_sync() == [instance.pk]
    sync(instance)
    assert list(
        UsageInterval.objects.filter(end__isnull=True).values_list("unit_price", flat=True)
    ) == [Decimal("1.9900")]


def test_the_monthly_task_issues_last_month_once(team, outsider, make_instance, clock):
    for organization in (team.organization, outsider.organization):
        instance = make_instance(organization)
        timeline(instance, ("2026-03-31 20:00:00", "running"))  # still running in April
    idle = make_instance(team.organization, name="never-ran")
    timeline(idle, ("2026-03-31 20:00:00", "pending"), ("2026-03-31 20:01:00", "failed"))
    clock.set("2026-04-01 02:00:00")
    assert tasks.invoices_issue_last_month() == 2
    assert tasks.invoices_issue_last_month() == 0
    assert sorted(Invoice.objects.values_list("subtotal", flat=True)) == [
        Decimal("9.96"),
        Decimal("9.96"),
    ]


def test_the_budget_task_meters_first(team, make_instance, clock):
    services.budget_set(organization=team.organization, amount="5", hard_limit=False, by=None)
    instance = make_instance(team.organization)
    timeline(instance, ("2026-03-15 08:00:00", "running"))  # 4 h at 2.49 by 12:00
    assert tasks.budgets_check() == 1


def test_a_mark_beyond_the_last_event_is_dropped_and_every_event_read(team, make_instance, clock):
    """The database went back (a restore) while the cache kept its marks."""
    box = make_instance(team.organization, name="box")
    timeline(box, ("2026-03-15 08:00:00", "running"))
    cache.set(services.PENDING_MARKS_KEY, [(at("2026-03-15 11:00:00").timestamp(), 10**9)])

    assert tasks.usage_sync_pending() == 1
