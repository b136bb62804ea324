"""A sold-out offer's price may rise past the bid of one machine: the customers who came in
when the price was low do not hold it down for every other customer while new ones are turned
away; more than one machine is taken back only when more GPUs than that are over the target."""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from portal.instances.models import State
from portal.market import pricing, services
from tests.market.test_cuts import prices, report


def test_over_its_target_a_rise_may_take_back_at_least_one_instance() -> None:
    def room(share: str, gpus: int) -> int:
        return pricing.rise_room(
            share=Decimal(share), target_share=Decimal(95), spare_gpus=250, instance_gpus=gpus
        )

    assert room("95", 8) == 0  # on the target: nobody is taken back
    assert room("96", 8) == 8  # 2 GPUs over it: one 8-GPU machine
    assert room("96", 1) == 2  # 1-GPU instances: the GPUs over the target
    assert room("100", 8) == 12  # more over it than a machine: those


def test_the_lowest_bid_of_one_machine_does_not_cap_a_sold_out_offer(
    market, make_instance, catalog
) -> None:
    """34 of 64 GPUs sold against a target of 50 %: 2 GPUs over it, less than one machine. The
    step (10.32 -> 10.60) passes the bid of 10.40 (one machine, taken back with notice) and
    stops at the next bid, 10.50: a second machine is more than the offer is over its target."""
    for bid in ("10.40", "10.50", "12.00", "12.00"):
        make_instance(
            State.RUNNING,
            instance_type=catalog.h100_8x,
            gpus=8,
            preemptible=True,
            max_price_per_hour=Decimal(bid),
        )
    start = timezone.now()
    report(free=30)
    services.spot_prices_adjust(now=start)
    report(free=30)
    services.spot_prices_adjust(now=start + timedelta(minutes=5))
    assert prices(market) == [Decimal("10.32"), Decimal("10.50")]
