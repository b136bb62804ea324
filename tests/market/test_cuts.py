"""A price cut bills every running customer less at once, so the spot price falls only when a
lower price can sell more: after the offer has stayed under its target for half an hour (a dip
is sold again at the current price), never while no further instance of the type fits, and a
price is given up to an hour to sell (the more is sold, the longer) before it is cut again."""

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
    every_five_minutes(start, range(70, 100, 5), free=48)  # ... cut at minute 70
    assert prices(market) == [Decimal("10.32"), Decimal("9.07")]
    row = SpotPrice.objects.order_by("valid_from")[1]
    assert row.valid_from == (start + timedelta(minutes=70)).replace(microsecond=0)
    # Half the target sold: the cut is given half an hour to sell before the next one.
    every_five_minutes(start, range(100, 105, 5), free=48)
    assert prices(market) == [Decimal("10.32"), Decimal("9.07"), Decimal("7.82")]


def test_the_more_of_an_offer_is_sold_the_longer_a_price_is_given_to_sell_before_a_cut() -> None:
    def wait(share: str) -> timedelta:
        return pricing.cut_wait(share=Decimal(share), target_share=Decimal(95))

    assert wait("95") == timedelta(hours=1)  # every running customer would pay less
    assert wait("47.5") == timedelta(minutes=30)
    assert wait("0") == timedelta(0)  # nobody to bill less: it may fall at once


def test_spare_gpus_no_instance_of_the_type_fits_on_do_not_lower_its_price(market) -> None:
    """40 of 64 GPUs free but scattered, not one free 8-GPU machine: a lower price would let
    nobody launch, so it holds, for hours. Once a machine is free, the offer has long been
    under its target and the price falls at its next step."""
    start = timezone.now()
    every_five_minutes(start, range(0, 120, 5), free=40, free_instances=0)
    assert prices(market) == [Decimal("10.32")]
    every_five_minutes(start, range(120, 125, 5), free=40, free_instances=1)
    assert prices(market) == [Decimal("10.32"), Decimal("9.1950")]  # 12.5 points under


def test_a_cut_is_never_deeper_than_the_free_gpus_could_make_up() -> None:
    """90 % sold: even if every free GPU sold at the lower price, a cut of more than 10 % would
    earn less than the running customers pay now."""
    bounds = pricing.Bounds(
        floor=Decimal("2"), ceiling=Decimal("12"), target_share=Decimal("95"), max_step=Decimal("2")
    )
    assert pricing.next_price(current=Decimal("10"), share=Decimal("90"), bounds=bounds) == Decimal(
        "9.5000"
    )  # the gap's step (0.50) is within 10 %
    assert pricing.next_price(current=Decimal("4"), share=Decimal("80"), bounds=bounds) == Decimal(
        "3.2000"
    )  # the gap's step (1.50) is more than 20 % of 4
    assert pricing.next_price(current=Decimal("10"), share=Decimal("0"), bounds=bounds) == Decimal(
        "8.0000"
    )  # nothing sold, nobody to bill less: the largest step
