"""The spot price follows the free capacity the simulator reports: within floor and ceiling,
never faster than the step, a history row per change."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.instances import sync
from portal.market import services
from portal.market.models import PriceReason, SpotPrice
from portal.provisioning import get_backend

pytestmark = pytest.mark.slow


def _rows(market):
    return list(
        SpotPrice.objects.filter(region=market.region, instance_type=market.instance_type).order_by(
            "valid_from"
        )
    )


def _fill(count: int) -> list[str]:
    backend = get_backend()
    return [
        backend.create(
            request_id=str(uuid.uuid4()),
            instance_type="gpu_8x_h100",
            region="us-east-1",
            image="ubuntu-22.04-cuda-12.4",
            ssh_keys=[],
            name=f"internal-{n}",
            preemptible=False,
        )
        for n in range(count)
    ]


def _adjust(market, moments, start):
    for _ in range(moments):
        start += timedelta(minutes=5)
        sync.capacity_refresh()
        services.spot_prices_adjust(now=start)
    return start


def test_price_rises_when_capacity_runs_short_and_falls_when_it_is_idle(simulator, market):
    t = timezone.now()
    t = _adjust(market, 1, t)  # idle fleet: the first price is the catalog's, then down
    (first,) = _rows(market)
    assert first.reason == PriceReason.INITIAL
    assert first.price == Decimal("10.32")  # the catalog's preemptible price, within bounds

    machines = _fill(7)  # 56 of 64 GPUs taken: 87.5 % sold, target 50 %
    t = _adjust(market, 12, t)
    rising = _rows(market)
    assert rising[-1].price == market.ceiling  # it got there, and no further
    assert len(rising) >= 5
    backend = get_backend()
    for machine_id in machines:
        backend.terminate(machine_id)
    t = _adjust(market, 20, t)  # 0 % sold: down to the floor
    rows = _rows(market)
    assert rows[-1].price == market.floor

    for before, after in zip(rows, rows[1:], strict=False):
        assert market.floor <= after.price <= market.ceiling
        assert abs(after.price - before.price) <= market.max_step
        assert after.price != before.price  # a row only for a change
        assert before.valid_until == after.valid_from  # one price in force at a time
        assert after.reason == PriceReason.MARKET
        assert "GPUs free" in after.detail
    assert rows[-1].valid_until is None
    sold = [r.sold_share for r in rows[1:]]
    assert Decimal("87.50") in sold and Decimal("0.00") in sold


def test_each_capacity_snapshot_moves_the_price(
    simulator, market, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        sync.capacity_refresh()
    assert len(_rows(market)) == 1
