"""A small GPU catalog shared by the catalog and quota tests (import the fixture in a conftest)."""

from dataclasses import dataclass
from decimal import Decimal

import pytest

from portal.catalog.models import GpuModel, InstanceType, Region
from tests.catalog.factories import (
    GpuModelFactory,
    InstanceTypeFactory,
    PriceFactory,
    RegionFactory,
)


@dataclass
class GpuCatalog:
    us_east: Region
    eu_west: Region
    closed: Region  # inactive
    h100: GpuModel
    l40s: GpuModel
    a100: GpuModel  # in no active instance type
    h100_8x: InstanceType
    h100_1x: InstanceType
    l40s_1x: InstanceType


@pytest.fixture
def gpu_catalog(db) -> GpuCatalog:
    us_east = RegionFactory(code="us-east-1", name="US East", location="Ashburn, Virginia")
    eu_west = RegionFactory(code="eu-west-1", name="EU West", location="Dublin, Ireland")
    closed = RegionFactory(code="ap-old-1", name="Closed", active=False)
    h100 = GpuModelFactory(code="h100", name="NVIDIA H100 80GB SXM", memory_gb=80)
    l40s = GpuModelFactory(code="l40s", name="NVIDIA L40S 48GB", memory_gb=48)
    a100 = GpuModelFactory(code="a100", name="NVIDIA A100 80GB SXM", memory_gb=80)
    h100_8x = InstanceTypeFactory(
        code="gpu_8x_h100",
        name="8x H100 80GB",
        gpu_model=h100,
        gpu_count=8,
        vcpus=208,
        memory_gb=1800,
        local_disk_gb=22000,
        regions=[us_east, eu_west, closed],
    )
    PriceFactory(
        instance_type=h100_8x,
        on_demand_hourly=Decimal("19.92"),
        preemptible_hourly=Decimal("10.32"),
    )
    h100_1x = InstanceTypeFactory(
        code="gpu_1x_h100", name="1x H100 80GB", gpu_model=h100, gpu_count=1, regions=[us_east]
    )
    PriceFactory(instance_type=h100_1x)
    l40s_1x = InstanceTypeFactory(
        code="gpu_1x_l40s", name="1x L40S 48GB", gpu_model=l40s, gpu_count=1, regions=[eu_west]
    )
    PriceFactory(
        instance_type=l40s_1x, on_demand_hourly=Decimal("0.99"), preemptible_hourly=Decimal("0.49")
    )
    inactive_a100 = InstanceTypeFactory(
        code="gpu_8x_a100", gpu_model=a100, gpu_count=8, active=False, regions=[us_east]
    )
    PriceFactory(instance_type=inactive_a100)
    return GpuCatalog(
        us_east=us_east,
        eu_west=eu_west,
        closed=closed,
        h100=h100,
        l40s=l40s,
        a100=a100,
        h100_8x=h100_8x,
        h100_1x=h100_1x,
        l40s_1x=l40s_1x,
    )
