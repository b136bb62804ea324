"""Fixtures for the operator's side: staff, the instances app's catalog, a fleet snapshot."""

import pytest

from portal.instances.capacity import capacity_snapshot_store
from portal.provisioning import Capacity
from tests.factories import UserFactory
from tests.instances import conftest as instance_fixtures

catalog = instance_fixtures.catalog
quota = instance_fixtures.quota
ssh_key = instance_fixtures.ssh_key
launch = instance_fixtures.launch
make_instance = instance_fixtures.make_instance
simulator_process = instance_fixtures.simulator_process
simulator = instance_fixtures.simulator
eager = instance_fixtures.eager


@pytest.fixture
def staff(db):
    return UserFactory(email="ops@backfill.example", is_staff=True, is_superuser=True)


def store_fleet(*, us_h100=64, us_h100_free=None, eu_h100=8, eu_l40s=8):
    """A capacity snapshot as the simulator's FLEET reports it (8 nodes of 8 H100 in us-east-1)."""
    free = us_h100 if us_h100_free is None else us_h100_free
    return capacity_snapshot_store(
        capacities=[
            Capacity("us-east-1", "gpu_1x_h100", "H100 80GB", free, us_h100, free),
            Capacity("us-east-1", "gpu_8x_h100", "H100 80GB", free, us_h100, free // 8),
            Capacity("eu-west-1", "gpu_1x_h100", "H100 80GB", eu_h100, eu_h100, eu_h100),
            Capacity("eu-west-1", "gpu_1x_l40s", "L40S 48GB", eu_l40s, eu_l40s, eu_l40s),
        ]
    )


@pytest.fixture
def fleet(db):
    return store_fleet()
