"""A rise takes back from running customers only the GPUs sold beyond the target: a sold-out
8-GPU offer held at its lowest bid stays there rather than interrupting a machine for a few
GPUs over the target (the market benchmark: fewer interruptions, more revenue)."""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from portal.instances.models import State
from portal.market import pricing, services
from tests.market.test_cuts import prices, report


def test_a_rise_may_take_back_only_the_gpus_sold_beyond_the_target() -> None:
    def room(share: str) -> int:
        return pricing.gpus_over_target(
            share=Decimal(share), target_share=Decimal(95), spare_gpus=250
        )

    assert room("90") == 0  # under the target: nobody is taken back
    assert room("95") == 0  # on the target: nobody either
    assert room("96") == 2  # 2 GPUs over it: fewer than one 8-GPU machine
    assert room("100") == 12


def test_the_lowest_bid_of_a_machine_holds_a_rise_over_a_few_gpus(
    market, make_instance, catalog
) -> None:
    """34 of 64 GPUs sold against a target of 50 %: 2 GPUs over it, less than one machine. The
    step (10.32 -> 10.60) stops at the lowest bid, 10.40, which keeps its machine running."""
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
    assert prices(market) == [Decimal("10.32"), Decimal("10.40")]  # was 10.50, past a machine
