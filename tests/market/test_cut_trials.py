"""A spot price cut must pay: it is on trial for an hour, then kept if the customers launched
at it pay more than the price before would have earned from them (those bid under the price
before could not have bought at it: the cut brought them), else undone (the price goes back
up, taking back at most the GPUs sold beyond those of before the cut) and not tried again for
two hours."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.capacity.snapshot import snapshot_store
from portal.instances.models import Instance, State
from portal.market import pricing, services
from portal.market.models import SpotPrice
from portal.provisioning import Capacity

TOTAL = 256  # the 8x H100 offer's GPUs in the reports (the market fixture: target 50 %)


def report(*, used: int) -> None:
    snapshot_store(
        capacities=[
            Capacity(
                region="us-east-1",
                instance_type="gpu_8x_h100",
                gpu_model="h100",
                free_gpus=TOTAL - used,
                total_gpus=TOTAL,
                free_instances=(TOTAL - used) // 8,
                internal_gpus=0,
                customer_gpus=used,
            )
        ],
        marker=0,
    )


def prices(market) -> list[Decimal]:
    return list(
        SpotPrice.objects.filter(instance_type=market.instance_type)
        .order_by("valid_from")
        .values_list("price", flat=True)
    )


@pytest.fixture
def customers(make_instance, catalog):
    """Running 8x H100 preemptible customers, by their bids: the GPUs the offer sells;
    launched at `at` (default: now)."""

    def run(*bids: str, at=None) -> list[Instance]:
        at = at or timezone.now()
        return [
            make_instance(
                State.RUNNING,
                instance_type=catalog.h100_8x,
                gpus=8,
                preemptible=True,
                max_price_per_hour=Decimal(bid),
                created_at=at,
                launched_at=at,
            )
            for bid in bids
        ]

    return run


def adjust(start, minutes: range) -> None:
    """A capacity report and the market's adjustment every 5 minutes, the GPUs in the report
    being those of the running customers."""
    for minute in minutes:
        used = sum(
            Instance.objects.filter(state=State.RUNNING, reclaim_at__isnull=True).values_list(
                "gpus", flat=True
            )
        )
        report(used=used)
        services.spot_prices_adjust(now=start + timedelta(minutes=minute))


def test_a_cut_pays_if_its_customers_pay_more_than_the_price_before_would_have_earned() -> None:
    trial = pricing.Trial(
        before=Decimal("10.00"), after=Decimal("8.00"), sold_before=80, at=timezone.now()
    )
    nine, ten, twelve = Decimal("9.00"), Decimal("10.00"), Decimal("12.00")

    assert not pricing.cut_pays(trial=trial, launched=[])  # it brought nobody
    # All bid the price before or more: they would have come anyway, and pay less.
    assert not pricing.cut_pays(trial=trial, launched=[(twelve, 16), (ten, 8)])
    assert pricing.cut_pays(trial=trial, launched=[(nine, 8)])  # 64 an hour more
    # 8 GPUs brought, 32 would have come: 8.00 × 40 = 320 = 10.00 × 32 (no better).
    assert not pricing.cut_pays(trial=trial, launched=[(nine, 8), (ten, 32)])
    assert pricing.cut_pays(trial=trial, launched=[(nine, 9), (ten, 32)])
    assert pricing.brought(trial=trial, launched=[(nine, 9), (ten, 32), (twelve, 1)]) == (9, 33)
    assert pricing.undo_room(trial=trial, sold_now=96) == 16
    assert pricing.undo_room(trial=trial, sold_now=72) == 0  # sold less: take nobody back


def test_a_cut_that_sells_nothing_more_is_undone_and_not_tried_again_for_two_hours(
    market, customers
) -> None:
    """32 of 256 GPUs sold (12.5 %, target 50 %): the price is cut half an hour after the first
    report, by the largest step. An hour later the offer still sells 32 GPUs, now at the lower
    price: the cut is undone, and the price holds for two hours before the next try."""
    customers("14.00", "14.00", "14.00", "14.00")
    start = timezone.now()
    adjust(start, range(0, 35, 5))
    assert prices(market) == [Decimal("10.32"), Decimal("9.07")]  # cut at minute 30
    adjust(start, range(35, 90, 5))  # on trial: no further cut, however far under the target
    assert prices(market) == [Decimal("10.32"), Decimal("9.07")]
    adjust(start, range(90, 95, 5))
    assert prices(market) == [Decimal("10.32"), Decimal("9.07"), Decimal("10.32")]
    undo = SpotPrice.objects.order_by("-valid_from").first()
    assert undo is not None
    assert (
        "the cut from 10.3200 to 9.0700 did not pay: it brought 0 preemptible GPUs, 0 would have "
        "been sold at 10.3200" in undo.detail
    )
    adjust(start, range(95, 210, 5))  # two hours after the undo, the next try
    assert prices(market) == [Decimal("10.32"), Decimal("9.07"), Decimal("10.32")]
    adjust(start, range(210, 215, 5))
    assert prices(market)[-1] == Decimal("9.07")


def test_a_cut_that_brings_enough_customers_is_kept_and_the_next_cut_follows(
    market, customers
) -> None:
    """Cut to 9.07 with 32 GPUs sold (330.24 an hour); two more 8-GPU customers come at the
    lower price: 48 GPUs at 9.07 (435.36 an hour). The cut is kept, and as the offer is still
    under its target the next cut comes when the trial ends."""
    customers("14.00", "14.00", "14.00", "14.00")
    start = timezone.now()
    adjust(start, range(0, 35, 5))
    assert prices(market) == [Decimal("10.32"), Decimal("9.07")]
    customers("9.50", "9.80", at=start + timedelta(minutes=40))
    adjust(start, range(35, 95, 5))
    assert prices(market) == [Decimal("10.32"), Decimal("9.07"), Decimal("7.82")]


def test_a_cut_is_kept_while_customers_leave_when_those_it_brought_pay_for_it(
    market, customers
) -> None:
    """At night customers leave and few arrive: an hour after the cut to 9.07 two of the four
    customers of before it have left, and one has come, bidding 9.50: it could not have
    bought at 10.32. The offer runs 24 GPUs against 32 before the cut, but at 10.32 it would
    run 16: the cut is kept, and the next one follows."""
    leaving = customers("14.00", "14.00")
    customers("14.00", "14.00")
    start = timezone.now()
    adjust(start, range(0, 35, 5))
    assert prices(market) == [Decimal("10.32"), Decimal("9.07")]
    Instance.objects.filter(pk__in=[i.pk for i in leaving]).update(state=State.TERMINATED)
    customers("9.50", at=start + timedelta(minutes=50))
    adjust(start, range(35, 95, 5))
    assert prices(market) == [Decimal("10.32"), Decimal("9.07"), Decimal("7.82")]


def test_a_cut_whose_customers_would_have_bought_anyway_is_undone(market, customers) -> None:
    """Two customers launch after the cut to 9.07, bidding 14.00: they would have bought at
    10.32, and pay less for nothing. The cut is undone, though the offer sells more."""
    customers("14.00", "14.00", "14.00", "14.00")
    start = timezone.now()
    adjust(start, range(0, 35, 5))
    customers("14.00", "14.00", at=start + timedelta(minutes=40))
    adjust(start, range(35, 95, 5))
    assert prices(market) == [Decimal("10.32"), Decimal("9.07"), Decimal("10.32")]
    undo = SpotPrice.objects.order_by("-valid_from").first()
    assert undo is not None and "it brought 0 preemptible GPUs, 16 would have" in undo.detail


def test_an_undone_cut_takes_back_no_more_gpus_than_the_offer_gained(market, customers) -> None:
    """64 GPUs sold before the cut to 9.07, one customer bidding 9.80. In the hour after it the
    seven others leave and nine customers come: one bidding 9.50, whom the cut brought, and
    eight bidding 14.00, who would have bought at 10.32 (one of them has left again). 9.07 × 72
    GPUs launched (653.04 an hour) is less than 10.32 × 64 (660.48): undone. The offer sells 72
    GPUs against 64 before the cut, so the undo may take back 8: the newcomer's, not the
    customer of 9.80, who was there before the cut; the price goes back up to 9.80, not to
    10.32."""
    (before_cut,) = customers("9.80")
    others = customers(*["14.00"] * 7)
    start = timezone.now()
    adjust(start, range(0, 90, 5))
    assert prices(market) == [Decimal("10.32"), Decimal("9.07")]
    (newcomer,) = customers("9.50", at=start + timedelta(minutes=86))
    gone, *_ = customers(*["14.00"] * 8, at=start + timedelta(minutes=86))
    left = [gone.pk, *(i.pk for i in others)]
    Instance.objects.filter(pk__in=left).update(state=State.TERMINATED)
    adjust(start, range(90, 95, 5))
    assert prices(market) == [Decimal("10.32"), Decimal("9.07"), Decimal("9.80")]
    # The newcomer's bid (9.50) is under the price restored: its instance is the one a rise
    # takes back (test_bids); the customer of 9.80 keeps running.
    assert newcomer.max_price_per_hour < prices(market)[-1] <= before_cut.max_price_per_hour


def test_a_rise_ends_the_trial(market, customers) -> None:
    """Cut, then the offer sells out (a rush of customers at the lower price): the price rises
    by the usual rule, and the old cut is not judged against it."""
    customers("14.00", "14.00", "14.00", "14.00")
    start = timezone.now()
    adjust(start, range(0, 35, 5))
    assert prices(market) == [Decimal("10.32"), Decimal("9.07")]
    customers(*["14.00"] * 28)  # 256 of 256 GPUs
    adjust(start, range(35, 40, 5))
    assert prices(market) == [Decimal("10.32"), Decimal("9.07"), Decimal("10.32")]
    adjust(start, range(40, 100, 5))  # rises on, no undo nor hold: 5 minutes a step
    assert prices(market)[3:] == [
        Decimal("11.57"),
        Decimal("12.82"),
        Decimal("14.00"),  # the customers' bids
    ]


def test_a_cut_while_nothing_is_sold_bills_nobody_less_and_is_not_on_trial(market) -> None:
    """No preemptible customer at all: the cuts follow one another, 5 minutes apart, as they
    always did (there is no revenue to lose)."""
    start = timezone.now()
    adjust(start, range(0, 50, 5))
    assert prices(market) == [
        Decimal("10.32"),
        Decimal("9.07"),  # minute 30
        Decimal("7.82"),
        Decimal("6.57"),
        Decimal("6.00"),  # the floor
    ]
