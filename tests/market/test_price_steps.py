"""How the spot price steps from the capacity reports, without the simulator: the share it
aims at is of the spare GPUs (the fleet less the operator's own work), and an offer moves at
most once per 5 minutes however often capacity is reported (every 30 s by the beat)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.capacity.snapshot import snapshot_store
from portal.instances.models import State
from portal.market import pricing, services
from portal.market.models import SpotPrice
from portal.market.signals import spot_bids_asked
from portal.provisioning import Capacity


def report(*, free: int, internal: int, total: int = 64) -> None:
    snapshot_store(
        capacities=[
            Capacity(
                region="us-east-1",
                instance_type="gpu_8x_h100",
                gpu_model="h100",
                free_gpus=free,
                total_gpus=total,
                free_instances=free // 8,
                internal_gpus=internal,
                customer_gpus=total - internal - free,
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


@pytest.mark.parametrize(
    ("free", "total", "internal", "share"),
    [
        (8, 64, 0, Decimal("87.50")),  # no internal work: the fleet is the spare
        (8, 64, 48, Decimal("50.00")),  # 16 spare, 8 of them sold
        (0, 64, 64, None),  # nothing spare: no share, the price stays
        (0, 64, 40, Decimal("100.00")),
    ],
)
def test_the_sold_share_is_of_the_spare_gpus(free, total, internal, share) -> None:
    assert pricing.sold_share(free_gpus=free, total_gpus=total, internal_gpus=internal) == share


def test_a_fleet_busy_with_internal_work_is_not_a_sold_out_market(market) -> None:
    """48 of 64 GPUs in the operator's own use, 8 of the 16 spare sold: 50 %, the target (the
    fleet's share, 87.5 %, would have raised the price)."""
    start = timezone.now()
    report(free=8, internal=48)
    services.spot_prices_adjust(now=start)
    report(free=8, internal=48)
    services.spot_prices_adjust(now=start + timedelta(minutes=5))
    assert prices(market) == [Decimal("10.32")]  # the first price, and no reason to move
    row = SpotPrice.objects.get()
    assert row.sold_share == Decimal("50.00")
    assert "8 of 16 spare GPUs free" in row.detail


def test_an_offer_steps_at_most_once_per_five_minutes(market) -> None:
    start = timezone.now()
    report(free=0, internal=0)  # sold out: the price should rise by a full step each time
    services.spot_prices_adjust(now=start)  # the first price
    for seconds in range(30, 300, 30):  # a report every 30 s: no step until 5 minutes
        report(free=0, internal=0)
        services.spot_prices_adjust(now=start + timedelta(seconds=seconds))
    assert prices(market) == [Decimal("10.32")]
    report(free=0, internal=0)
    services.spot_prices_adjust(now=start + timedelta(minutes=5))
    assert prices(market) == [Decimal("10.32"), Decimal("10.32") + market.max_step]
    report(free=0, internal=0)
    services.spot_prices_adjust(now=start + timedelta(minutes=9, seconds=59))
    assert len(prices(market)) == 2


def test_a_rising_price_stops_at_the_bid_that_would_empty_the_offer_under_its_target(
    market, make_instance, catalog
) -> None:
    """Sold out (100 %, target 50 % of 64 spare GPUs): a rise may reclaim the 32 GPUs sold
    beyond the target, no more. The full step (10.32 -> 11.57) would pass the bids of 40 GPUs;
    it stops at 11.00, which passes only the three bids of 10.50 (24 GPUs)."""

    def running(bid: str) -> None:
        make_instance(
            State.RUNNING,
            instance_type=catalog.h100_8x,
            gpus=8,
            preemptible=True,
            max_price_per_hour=Decimal(bid),
        )

    for bid in ("10.50", "10.50", "10.50", "11.00", "11.00", "14.00", "14.00", "14.00"):
        running(bid)
    start = timezone.now()
    report(free=0, internal=0)
    services.spot_prices_adjust(now=start)
    report(free=0, internal=0)
    services.spot_prices_adjust(now=start + timedelta(minutes=5))
    assert prices(market) == [Decimal("10.32"), Decimal("11.00")]
    # The next step may not pass the bids of 11.00: the 24 GPUs' room is used up.
    report(free=0, internal=0)
    services.spot_prices_adjust(now=start + timedelta(minutes=10))
    assert prices(market) == [Decimal("10.32"), Decimal("11.00")]

    # Held at a bid is a decision like a step: the bids are weighed again 5 minutes later,
    # not at every report in between.
    asked = []

    def count(sender, instance_type_id, **kwargs):
        asked.append(instance_type_id)
        return []

    spot_bids_asked.connect(count, dispatch_uid="test-count-bids")
    try:
        for seconds in (30, 150, 270):
            report(free=0, internal=0)
            services.spot_prices_adjust(now=start + timedelta(minutes=10, seconds=seconds))
        assert asked == []
        report(free=0, internal=0)
        services.spot_prices_adjust(now=start + timedelta(minutes=15))
        assert asked == [market.instance_type_id]
    finally:
        spot_bids_asked.disconnect(dispatch_uid="test-count-bids")


@pytest.mark.parametrize(
    ("room", "price"),
    [
        (0, Decimal("10.50")),  # no room: not past the lowest bid
        (8, Decimal("11.00")),  # one 8-GPU machine may go
        (16, Decimal("11.50")),  # both may: the full step
    ],
)
def test_a_rise_passes_only_the_bids_of_the_gpus_sold_beyond_the_target(room, price) -> None:
    bids = [(Decimal("11.00"), 8), (Decimal("10.50"), 8), (Decimal("12.00"), 8)]
    assert (
        pricing.rise_within_bids(
            current=Decimal("10.00"), proposed=Decimal("11.50"), bids=bids, room=room
        )
        == price
    )


def test_no_gpus_are_over_the_target_at_or_under_it() -> None:
    assert (
        pricing.gpus_over_target(share=Decimal("95"), target_share=Decimal("95"), spare_gpus=500)
        == 0
    )
    assert (
        pricing.gpus_over_target(share=Decimal("99"), target_share=Decimal("95"), spare_gpus=500)
        == 20
    )


@pytest.mark.parametrize(
    ("share", "price"),
    [
        (Decimal("95.00"), Decimal("10.00")),  # on the target
        (Decimal("93.50"), Decimal("10.00")),  # a machine's worth under it: held
        (Decimal("92.00"), Decimal("10.00")),
        (Decimal("91.99"), Decimal("9.6990")),  # further under: down by the gap
        (Decimal("99.00"), Decimal("10.4000")),  # over it: up by the gap
    ],
)
def test_the_price_holds_just_under_the_target_and_moves_beyond(share, price) -> None:
    bounds = pricing.Bounds(
        floor=Decimal("2"), ceiling=Decimal("12"), target_share=Decimal("95"), max_step=Decimal("1")
    )
    assert pricing.next_price(current=Decimal("10.00"), share=share, bounds=bounds) == price
