"""Billing fixtures: a small priced catalog, instances with hand-written timelines, a fixed clock.

Timelines are written as InstanceEvent rows with explicit times, as the lifecycle records them;
the billing clock (`portal.billing.clock.now`) is patched, so no test depends on the real time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from unittest.mock import patch

import pytest

from portal.billing import services
from portal.catalog.models import GpuModel, Image, InstanceType, Price, Region
from portal.instances.models import Instance, InstanceEvent
from portal.market.models import PriceReason, SpotPrice


def at(text: str) -> datetime:
    """'2026-03-10 10:00:00' → an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Catalog:
    us_east: Region
    eu_west: Region
    h100_1x: InstanceType
    h100_8x: InstanceType
    image: Image


@pytest.fixture
def catalog(db) -> Catalog:
    us_east = Region.objects.create(code="us-east-1", name="US East")
    eu_west = Region.objects.create(code="eu-west-1", name="EU West")
    h100 = GpuModel.objects.create(code="h100", name="NVIDIA H100 80GB", memory_gb=80)

    def itype(code, name, count, prices):
        instance_type = InstanceType.objects.create(
            code=code,
            name=name,
            gpu_model=h100,
            gpu_count=count,
            vcpus=26 * count,
            memory_gb=225 * count,
            local_disk_gb=2750 * count,
        )
        instance_type.regions.set([us_east, eu_west])
        on_demand, preemptible, stopped = prices
        Price.objects.create(
            instance_type=instance_type,
            valid_from=at("2026-01-01 00:00:00"),
            on_demand_hourly=Decimal(on_demand),
            preemptible_hourly=Decimal(preemptible),
            stopped_hourly=Decimal(stopped),
        )
        return instance_type

    return Catalog(
        us_east=us_east,
        eu_west=eu_west,
        h100_1x=itype("gpu_1x_h100", "1x H100 80GB", 1, ("2.49", "1.29", "0.02")),
        h100_8x=itype("gpu_8x_h100", "8x H100 80GB", 8, ("19.92", "10.32", "0.16")),
        image=Image.objects.create(code="ubuntu", name="Ubuntu"),
    )


@pytest.fixture
def make_instance(catalog):
    counter = iter(range(1, 10_000))

    def make(organization, *, instance_type=None, region=None, preemptible=False, name=None):
        instance_type = instance_type or catalog.h100_1x
        return Instance.objects.create(
            organization=organization,
            name=name or f"node-{next(counter)}",
            instance_type=instance_type,
            region=region or catalog.us_east,
            image=catalog.image,
            preemptible=preemptible,
            gpus=instance_type.gpu_count,
        )

    return make


def timeline(instance: Instance, *steps: tuple[str, str]) -> list[InstanceEvent]:
    """Record state changes: timeline(i, ("2026-03-10 10:00:00", "running"), ...)."""
    events = []
    state = instance.state
    for when, to_state in steps:
        events.append(
            InstanceEvent.objects.create(
                instance=instance, at=at(when), from_state=state, to_state=to_state
            )
        )
        state = to_state
    Instance.objects.filter(pk=instance.pk).update(state=state)
    return events


class Clock:
    def __init__(self, moment: datetime):
        self.moment = moment

    def set(self, text: str) -> None:
        self.moment = at(text)

    def __call__(self) -> datetime:
        return self.moment


@pytest.fixture
def clock():
    """The billing clock, fixed: `clock.set("2026-04-01 02:00:00")`."""
    fixed = Clock(at("2026-03-15 12:00:00"))
    with patch("portal.billing.clock.now", fixed):
        yield fixed


def sync(instance: Instance) -> None:
    services.usage_sync_instance(instance_id=instance.pk)


def price_change(instance_type: InstanceType, when: str, on_demand, preemptible, stopped):
    return Price.objects.create(
        instance_type=instance_type,
        valid_from=at(when),
        on_demand_hourly=Decimal(on_demand),
        preemptible_hourly=Decimal(preemptible),
        stopped_hourly=Decimal(stopped),
    )


def spot_row(catalog: Catalog, start: str, until: str | None, price: str) -> SpotPrice:
    """An unsaved spot price row of the 1x H100 in us-east-1 (for `spot_price_history_add`)."""
    return SpotPrice(
        region=catalog.us_east,
        instance_type=catalog.h100_1x,
        price=Decimal(price),
        valid_from=at(start),
        valid_until=at(until) if until else None,
        reason=PriceReason.MARKET,
    )


from tests.operations.conftest import staff  # noqa: E402, F401
