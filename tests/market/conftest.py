"""Fixtures for the spot market: the instances' catalog (codes the simulator knows), the
simulator, a market on the 8x H100 offer in us-east-1 (64 GPUs in the simulator's fleet)."""

from decimal import Decimal

import pytest

from portal.market.models import SpotMarket
from tests.instances.conftest import (  # noqa: F401, F811
    catalog,
    eager,
    launch,
    make_instance,
    quota,
    simulator,
    simulator_process,
    ssh_key,
)


@pytest.fixture
def market(catalog) -> SpotMarket:  # noqa: F811
    return SpotMarket.objects.create(
        region=catalog.us_east,
        instance_type=catalog.h100_8x,
        floor=Decimal("6.00"),
        ceiling=Decimal("15.00"),
        target_share=Decimal("50"),
        max_step=Decimal("1.25"),
    )


@pytest.fixture
def staff(db):  # noqa: F811
    from tests.factories import UserFactory

    return UserFactory(email="ops@backfill.example", is_staff=True, is_superuser=True)
