"""A price cut bills every running customer less at once, so the spot price falls only when a
lower price can sell more: after the offer has stayed under its target for half an hour (a dip
is sold again at the current price), and never while no further instance of the type fits."""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from portal.capacity.snapshot import snapshot_store
from portal.market import pricing, services
from portal.market.models import SpotPrice
from portal.provisioning import Capacity


def report(*, free: int, free_instances: int | None = None, total: int = 64) -> None:
    """The 8x H100 offer of the market fixture (target 50 %), no internal work."""
    snapshot_store(
        capacities=[
            Capacity(
                region="us-east-1",
                instance_type="gpu_8x_h100",
                gpu_model="h100",
                free_gpus=free,
                total_gpus=total,
                free_instances=free // 8 if free_instances is None else free_instances,
                internal_gpus=0,
                customer_gpus=total - free,
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


def every_five_minutes(start, minutes: range, **capacity) -> None:
    for minute in minutes:
        report(**capacity)
        services.spot_prices_adjust(now=start + timedelta(minutes=minute))


def test_a_cut_waits_for_half_an_hour_under_the_target_and_room_for_one_more_instance() -> None:
    now = timezone.now()
    assert not pricing.may_cut(under_since=None, now=now, free_instances=3)
    assert not pricing.may_cut(under_since=now - timedelta(minutes=29), now=now, free_instances=3)
    assert pricing.may_cut(under_since=now - timedelta(minutes=30), now=now, free_instances=3)
    assert not pricing.may_cut(under_since=now - timedelta(hours=5), now=now, free_instances=0)


def test_a_dip_under_the_target_that_is_sold_again_within_half_an_hour_keeps_the_price(
    market,
) -> None:
    """At the target (32 of 64 GPUs sold), a 16-GPU customer leaves (25 % sold): the price holds
    for 25 minutes, another customer takes the GPUs, and nobody was billed less. A second dip
    that lasts is cut half an hour after it began, one step each 5 minutes from then."""
    start = timezone.now()
    every_five_minutes(start, range(0, 5, 5), free=32)  # the first price, on the target
    every_five_minutes(start, range(5, 30, 5), free=48)
    every_five_minutes(start, range(30, 40, 5), free=32)  # sold again
    assert prices(market) == [Decimal("10.32")]

    every_five_minutes(start, range(40, 70, 5), free=48)  # under from minute 40 ...
    assert prices(market) == [Decimal("10.32")]
    every_five_minutes(start, range(70, 80, 5), free=48)  # ... cut from minute 70
    assert prices(market) == [Decimal("10.32"), Decimal("9.07"), Decimal("7.82")]
    row = SpotPrice.objects.order_by("valid_from")[1]
    assert row.valid_from == (start + timedelta(minutes=70)).replace(microsecond=0)


def test_spare_gpus_no_instance_of_the_type_fits_on_do_not_lower_its_price(market) -> None:
    """40 of 64 GPUs free but scattered, not one free 8-GPU machine: a lower price would let
    nobody launch, so it holds, for hours. Once a machine is free, the offer has long been
    under its target and the price falls at its next step."""
    start = timezone.now()
    every_five_minutes(start, range(0, 120, 5), free=40, free_instances=0)
    assert prices(market) == [Decimal("10.32")]
    every_five_minutes(start, range(120, 125, 5), free=40, free_instances=1)
    assert prices(market) == [Decimal("10.32"), Decimal("9.1950")]  # 12.5 points under
