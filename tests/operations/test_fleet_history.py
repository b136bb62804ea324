"""The fleet over time: compact history rows from each capacity report, and the overview's
charts (internal vs sold vs free, fill rate, reclaims) with its cards."""

from datetime import timedelta
from decimal import Decimal

from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from portal.capacity.models import CapacityPeriod
from portal.instances.capacity import capacity_snapshot_store
from portal.instances.models import State
from portal.operations.history import RANGES, fleet_history
from portal.provisioning import Capacity
from portal.reclaims import services as reclaim_services
from portal.reclaims.models import OrderState, ReclaimOrder, ReclaimVictim
from tests.instances.conftest import set_quota


def report(*, internal, free, fleet=64):
    with TestCase.captureOnCommitCallbacks(execute=True):
        capacity_snapshot_store(
            capacities=[
                Capacity(
                    "us-east-1",
                    "gpu_1x_h100",
                    "H100 80GB",
                    free,
                    fleet,
                    free,
                    internal_gpus=internal,
                    customer_gpus=fleet - internal - free,
                )
            ]
        )


def test_each_report_adds_a_sample_to_one_compact_row_per_place_and_period(catalog, make_instance):
    make_instance(State.RUNNING, preemptible=True)
    make_instance(State.RUNNING)
    report(internal=40, free=22)
    report(internal=44, free=18)

    (row,) = CapacityPeriod.objects.all()
    assert (row.region, row.gpu_model, row.samples) == ("us-east-1", "h100", 2)
    assert (row.fleet, row.internal, row.free) == (128, 84, 40)
    assert (row.on_demand, row.preemptible, row.reserved) == (2, 2, 0)


def test_the_overview_charts_the_fleet_fill_rate_and_reclaims(
    client, staff, catalog, make_instance, team
):
    set_quota(team.organization, catalog.us_east, catalog.h100, on_demand=16, preemptible=32)
    spot = make_instance(State.RUNNING, preemptible=True, launched_at=timezone.now())
    report(internal=32, free=31)
    order = reclaim_services.reclaim_order_create(
        region=catalog.us_east,
        gpu_model=catalog.h100,
        gpus=1,
        deadline=timezone.now() + timedelta(minutes=5),
        by=staff,
    )
    assert order.victims.get().instance == spot

    client.force_login(staff)
    page = client.get(reverse("operations_overview")).content.decode()
    assert 'data-testid="chart-fleet"' in page
    assert 'data-testid="chart-fill-rate"' in page
    assert 'data-testid="chart-reclaims"' in page
    assert "Internal vs sold vs free" in page
    # One GPU sold of the 32 the operator's work leaves: 3 %.
    assert "3 %" in page
    assert "1 <small>orders</small>" in page
    assert "48 <small>of 64 GPUs</small>" in page  # granted quota against the fleet
    for range_key in ("7d", "30d"):
        other = client.get(
            reverse("operations_overview"), {"place": "us-east-1/h100", "range": range_key}
        )
        assert other.status_code == 200
        assert 'class="current">' in other.content.decode()


def test_each_bucket_averages_its_periods_and_the_totals_count_idle_and_sold_hours(db):
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    start = now - timedelta(hours=24)

    def period(at, *, samples, fleet, internal, sold, free):
        CapacityPeriod.objects.create(
            region="us-east-1",
            gpu_model="h100",
            start=at,
            samples=samples,
            fleet=fleet * samples,
            internal=internal * samples,
            on_demand=sold * samples,
            free=free * samples,
        )

    # The first hour: two periods (fleet 64, internal 32, then 48); sold 16 in each.
    period(start, samples=2, fleet=64, internal=32, sold=16, free=16)
    period(start + timedelta(minutes=5), samples=3, fleet=64, internal=48, sold=16, free=0)
    # The last hour: internal work above the fleet counts no idle GPUs, never negative ones.
    period(now - timedelta(minutes=10), samples=1, fleet=64, internal=70, sold=0, free=0)
    # Another place and a period before the range count nowhere.
    CapacityPeriod.objects.create(region="eu-west-1", gpu_model="h100", start=start, samples=1)
    period(start - timedelta(minutes=5), samples=1, fleet=999, internal=0, sold=0, free=0)

    history = fleet_history(region="us-east-1", gpu_model="h100", range_key="24h", now=now)

    first, last = history.buckets[0], history.buckets[-1]
    assert (first.fleet, first.internal, first.sold, first.free) == (64, 40, 16, 8)
    assert first.fill_rate == 16 / 24
    assert (last.fleet, last.internal, last.fill_rate) == (64, 70, None)
    assert all(b._periods == 0 for b in history.buckets[1:-1])
    five_minutes = 300 / 3600
    assert history.idle_gpu_hours == (32 + 16) * five_minutes
    assert history.sold_gpu_hours == (16 + 16) * five_minutes
    assert history.fill_rate == 32 / 48


def test_every_range_buckets_the_periods_as_comparing_each_boundary_would(db):
    """The buckets come from arithmetic on the period's start (one expression, not one
    comparison per bucket): a period starting exactly on a boundary opens the next bucket,
    one just before it closes the previous, as the comparisons put them."""
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    for range_key, (_label, step, count) in RANGES.items():
        CapacityPeriod.objects.all().delete()
        start = now - step * count
        starts = {
            start,
            start + step - timedelta(minutes=5),
            start + step,
            now - timedelta(minutes=5),
        }
        starts |= {start + step * i + timedelta(minutes=35 * i % 60) for i in range(count)}
        for n, at in enumerate(sorted(starts)):
            CapacityPeriod.objects.create(
                region="us-east-1", gpu_model="h100", start=at, samples=1, fleet=n + 1
            )
        history = fleet_history(region="us-east-1", gpu_model="h100", range_key=range_key, now=now)
        expected: dict[int, list[int]] = {}
        for period in CapacityPeriod.objects.all():
            index = next(i for i in range(count) if period.start < start + step * (i + 1))
            expected.setdefault(index, []).append(period.fleet)
        got = {i: b for i, b in enumerate(history.buckets) if b._periods}
        assert set(got) == set(expected), range_key
        for i, fleets in expected.items():
            assert got[i]._periods == len(fleets)
            assert got[i].fleet == sum(fleets) / len(fleets)


def test_the_historys_sums_are_kept_between_views_and_a_report_shows_at_the_next(
    catalog, make_instance
):
    """The 30 days' sums per bucket are read once per 5-minute period, and each capacity
    report (a sample added to the history) is in the next view's figures."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    report(internal=40, free=20)
    now = timezone.now()
    first = fleet_history(region="us-east-1", gpu_model="h100", range_key="30d", now=now)
    with CaptureQueriesContext(connection) as captured:
        again = fleet_history(
            region="us-east-1", gpu_model="h100", range_key="30d", now=now + timedelta(seconds=1)
        )
    assert not [q for q in captured if "capacity_capacityperiod" in q["sql"] and "SUM(" in q["sql"]]
    assert [b.internal for b in again.buckets] == [b.internal for b in first.buckets]

    report(internal=60, free=0)
    after = fleet_history(region="us-east-1", gpu_model="h100", range_key="30d", now=now)
    assert after.buckets[-1].internal == 50.0  # (40 + 60) / 2 samples
    assert after.buckets[-1].internal != first.buckets[-1].internal


def test_rows_off_the_five_minute_grid_are_summed_at_every_view(db):
    """Only rows on the periods' grid (all that capacity reports write) make the sums the
    same for every moment of a period; others are read again."""
    from portal.operations import history

    now = timezone.now().replace(minute=2, second=30, microsecond=0)
    CapacityPeriod.objects.create(
        region="us-east-1", gpu_model="h100", start=now - timedelta(minutes=1), samples=1, fleet=8
    )
    seen = fleet_history(region="us-east-1", gpu_model="h100", range_key="24h", now=now)
    assert seen.buckets[-1].fleet == 8
    CapacityPeriod.objects.filter(fleet=8).update(fleet=16)  # no signal: nothing to replace
    later = fleet_history(
        region="us-east-1", gpu_model="h100", range_key="24h", now=now + timedelta(seconds=5)
    )
    assert later.buckets[-1].fleet == 16
    assert history._period_end(now) == now.replace(minute=5, second=0)
    assert history._period_end(now.replace(minute=5, second=0)) == now.replace(minute=5, second=0)


def test_a_charts_labels_and_names_are_escaped():
    from portal.operations import charts

    svg = charts.stacked_bars(
        title="Fill <rate>",
        description="a & b",
        labels=["<script>", "x'y"],
        series=[charts.Series('"sold"', "c-sold", [1.0, None])],
        testid="t",
    )
    assert "<script>" not in svg and "&lt;script&gt;: &quot;sold&quot; 1" in svg
    assert "Fill &lt;rate&gt;" in svg and "a &amp; b" in svg and "x&#x27;y" in svg
    assert svg.count("<rect ") == 1  # no bar for a missing value


def test_a_chart_drawn_again_shows_its_values_of_now():
    """The markup of the same values is kept between views; a changed value is drawn anew."""
    from portal.operations import charts

    def fill(values, labels=("Mar 01", "Mar 02")):
        return charts.stacked_bars(
            title="Fill rate",
            description="d",
            labels=list(labels),
            series=[charts.Series("fill rate", "c-fill", list(values))],
            top=1.0,
            tick=charts.percent,
            testid="chart-fill-rate",
        )

    first = fill([0.5, 0.25])
    assert fill([0.5, 0.25]) == first
    assert "Mar 02: fill rate 25 %" in first
    moved = fill([0.5, 0.75])
    assert "Mar 02: fill rate 75 %" in moved and "25 %" not in moved
    assert "Mar 03: fill rate 25 %" in fill([0.5, 0.25], labels=("Mar 02", "Mar 03"))


def test_the_reclaims_card_and_chart_count_each_order_of_the_place_and_window(
    catalog, make_instance, team
):
    """Orders of the place since the window's start: each in its bucket with its victims'
    GPUs; those met and those still open counted; an order that found nothing to reclaim,
    one of another place and one before the window left out. Granted quota: the place's
    on-demand and preemptible limits."""
    set_quota(team.organization, catalog.us_east, catalog.h100, on_demand=16, preemptible=32)
    set_quota(team.organization, catalog.eu_west, catalog.l40s, on_demand=5, preemptible=5)
    now = timezone.now()

    def order(hours_ago, state, *, met=False, victims=(), region=None, gpu_model=None):
        made = ReclaimOrder.objects.create(
            region=region or catalog.us_east,
            gpu_model=gpu_model or catalog.h100,
            gpus=8,
            deadline=now,
            source="staff",
            notice_seconds=300,
            state=state,
            earliest_at=now,
            end_at=now,
            met=met,
            created_at=now - timedelta(hours=hours_ago),
        )
        for rank, gpus in enumerate(victims, start=1):
            ReclaimVictim.objects.create(
                order=made,
                instance=make_instance(State.RUNNING, preemptible=True),
                rank=rank,
                gpus=gpus,
                price_per_hour=Decimal("1.00"),
                noticed_at=now,
                reclaim_at=now,
            )
        return made

    order(2.5, OrderState.DONE, met=True, victims=(1, 2))
    order(2.2, OrderState.DONE, met=False, victims=(4,))
    order(0.5, OrderState.OPEN, victims=(8,))
    order(1.5, OrderState.NOTHING)
    order(
        1.5, OrderState.DONE, met=True, victims=(1,), region=catalog.eu_west, gpu_model=catalog.l40s
    )
    order(30, OrderState.DONE, met=True, victims=(1,))

    history = fleet_history(region="us-east-1", gpu_model="h100", range_key="24h", now=now)

    assert (history.orders, history.orders_met, history.orders_open) == (3, 1, 1)
    assert history.granted_quota == 48
    by_bucket = [(b.orders, b.orders_met, b.gpus_reclaimed) for b in history.buckets]
    assert by_bucket[21] == (2, 1, 7) and by_bucket[23] == (1, 0, 8)
    assert sum(b.orders for b in history.buckets) == 3
