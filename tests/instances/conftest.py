"""Fixtures for instance tests: a catalog the simulator also knows, quota, SSH keys, launches."""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.catalog.models import GpuModel, Image, InstanceType, Price, Region
from portal.instances import services, tasks
from portal.instances.models import Instance, State
from portal.quotas.models import Kind
from portal.quotas.services import quota_limit_set
from tests.sshkeys.factories import SshKeyFactory


@pytest.fixture(autouse=True)
def _no_provisioning_run_queued():
    """Each test starts with no provisioning run marked as queued (an earlier test's launch
    may have marked one that no worker took)."""
    tasks._provision_queue_taken()
    yield


@dataclass
class Catalog:
    us_east: Region
    eu_west: Region
    closed: Region  # inactive
    h100: GpuModel
    l40s: GpuModel
    h100_1x: InstanceType  # us-east-1 and eu-west-1
    h100_8x: InstanceType  # us-east-1 only
    l40s_1x: InstanceType  # eu-west-1 only
    retired: InstanceType  # inactive
    unpriced: InstanceType  # no price in force yet
    ubuntu: Image
    old_image: Image  # inactive


def _type(code, name, gpu, count, regions, *, active=True, price=("2.49", "1.29")):
    itype = InstanceType.objects.create(
        code=code,
        name=name,
        gpu_model=gpu,
        gpu_count=count,
        vcpus=26 * count,
        memory_gb=225 * count,
        local_disk_gb=2750 * count,
        active=active,
    )
    itype.regions.set(regions)
    if price:
        Price.objects.create(
            instance_type=itype,
            valid_from=timezone.now() - timedelta(days=30),
            on_demand_hourly=Decimal(price[0]),
            preemptible_hourly=Decimal(price[1]),
        )
    return itype


@pytest.fixture
def catalog(db) -> Catalog:
    """Codes match the simulator's default fleet, so the same rows work against it."""
    us_east = Region.objects.create(code="us-east-1", name="US East", location="Virginia")
    eu_west = Region.objects.create(code="eu-west-1", name="EU West", location="Dublin")
    closed = Region.objects.create(code="ap-old-1", name="Closed", active=False)
    h100 = GpuModel.objects.create(code="h100", name="NVIDIA H100 80GB", memory_gb=80)
    l40s = GpuModel.objects.create(code="l40s", name="NVIDIA L40S 48GB", memory_gb=48)
    unpriced = _type("gpu_2x_h100", "2x H100 80GB", h100, 2, [us_east], price=None)
    Price.objects.create(
        instance_type=unpriced,
        valid_from=timezone.now() + timedelta(days=30),
        on_demand_hourly=Decimal("4.98"),
        preemptible_hourly=Decimal("2.58"),
    )
    return Catalog(
        us_east=us_east,
        eu_west=eu_west,
        closed=closed,
        h100=h100,
        l40s=l40s,
        h100_1x=_type("gpu_1x_h100", "1x H100 80GB", h100, 1, [us_east, eu_west, closed]),
        h100_8x=_type("gpu_8x_h100", "8x H100 80GB", h100, 8, [us_east], price=("19.92", "10.32")),
        l40s_1x=_type("gpu_1x_l40s", "1x L40S 48GB", l40s, 1, [eu_west], price=("0.99", "0.49")),
        retired=_type("gpu_4x_h100", "4x H100 80GB", h100, 4, [us_east], active=False),
        unpriced=unpriced,
        ubuntu=Image.objects.create(code="ubuntu-22.04-cuda-12.4", name="Ubuntu 22.04 + CUDA"),
        old_image=Image.objects.create(code="ubuntu-18.04", name="Ubuntu 18.04", active=False),
    )


def set_quota(organization, region, gpu_model, *, on_demand=0, preemptible=0):
    for kind, limit in ((Kind.ON_DEMAND, on_demand), (Kind.PREEMPTIBLE, preemptible)):
        quota_limit_set(
            organization=organization,
            region=region,
            gpu_model=gpu_model,
            kind=kind,
            limit=limit,
            reason="test",
        )


@pytest.fixture
def quota(team, catalog):
    """16 on-demand and 8 preemptible H100s in both regions, 4 L40S in eu-west-1."""
    org = team.organization
    set_quota(org, catalog.us_east, catalog.h100, on_demand=16, preemptible=8)
    set_quota(org, catalog.eu_west, catalog.h100, on_demand=16, preemptible=8)
    set_quota(org, catalog.eu_west, catalog.l40s, on_demand=4, preemptible=4)


@pytest.fixture
def ssh_key(team):
    return SshKeyFactory(membership=team.member, shared=True, name="laptop")


@pytest.fixture
def launch(team, catalog, quota, ssh_key):
    """`launch(name="web-1", **overrides)`: instance_launch with good defaults, as the member."""

    def do(name: str = "train-1", **overrides) -> Instance:
        arguments = {
            "membership": team.member,
            "name": name,
            "instance_type": catalog.h100_1x.code,
            "region": catalog.us_east.code,
            "image": catalog.ubuntu.code,
            "ssh_key_ids": [ssh_key.pk],
            "preemptible": False,
            "idempotency_key": None,
            **overrides,
        }
        return services.instance_launch(**arguments)

    return do


@pytest.fixture
def make_instance(team, catalog, quota):
    """An instance put straight into a state (no lifecycle), for tests of single steps."""
    counter = iter(range(10_000))

    def make(state: str = State.PENDING, **fields) -> Instance:
        n = next(counter)
        values = {
            "organization": team.organization,
            "created_by": team.member.user,
            "name": f"box-{n}",
            "instance_type": catalog.h100_1x,
            "region": catalog.us_east,
            "image": catalog.ubuntu,
            "gpus": catalog.h100_1x.gpu_count,
            "state": state,
            **fields,
        }
        if state not in (State.PENDING, State.PROVISIONING) and "backend_id" not in fields:
            values["backend_id"] = f"m-test{n:06d}"
        if state in (State.RUNNING, State.REBOOTING) and "running_since" not in fields:
            values["running_since"] = timezone.now()
        return Instance.objects.create(**values)

    return make


# The provisioning simulator as a real subprocess, and Celery tasks run in-process.

FLEET = {
    "instance_types": [
        {"name": "gpu_1x_h100", "gpu_model": "H100 80GB", "gpu_count": 1},
        {"name": "gpu_8x_h100", "gpu_model": "H100 80GB", "gpu_count": 8},
        {"name": "gpu_1x_l40s", "gpu_model": "L40S 48GB", "gpu_count": 1},
    ],
    "nodes": [
        {"region": "us-east-1", "gpu_model": "H100 80GB", "gpus": 8, "count": 8},
        {"region": "eu-west-1", "gpu_model": "H100 80GB", "gpus": 8, "count": 1},
        {"region": "eu-west-1", "gpu_model": "L40S 48GB", "gpus": 8, "count": 1},
    ],
}


@pytest.fixture(scope="session")
def simulator_process(tmp_path_factory):
    from portal.simulator.process import SimulatorProcess

    with SimulatorProcess(tmp_path_factory.mktemp("instances-sim") / "state.json") as process:
        yield process


@pytest.fixture
def simulator(simulator_process, settings):
    """The simulator on FLEET with no machines, no faults and zero delays; settings point at it.

    The driver gets a 1 s read time-out and no retries of its own, so faults reach the tasks.
    """
    simulator_process.control.reset(catalog=FLEET)
    settings.PROVISIONING_BACKEND = "simulator"
    settings.SIMULATOR_URL = simulator_process.url
    settings.PROVISIONING_TOKEN = simulator_process.token
    settings.PROVISIONING_TIMEOUT = (1.0, 1.0)
    settings.PROVISIONING_RETRIES = 0
    settings.PROVISIONING_BACKOFF = 0
    settings.INSTANCE_RETRY_BASE = 0
    settings.INSTANCE_POLL_INTERVAL = 0
    return simulator_process


@pytest.fixture
def eager():
    """Tasks called with .apply() run here, and so do the retries and polls they enqueue.

    (Only for these in-process tests; the worker and browser tests run a real worker.) A task
    that fails with an exception fails the test.
    """
    from celery.signals import task_failure

    from portal.celery import app

    failures = []

    def record(sender=None, exception=None, **kwargs):
        failures.append((sender.name, exception))

    task_failure.connect(record, weak=False)
    old = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = old
    task_failure.disconnect(record)
    assert failures == [], failures


def machines_of(simulator_process, *, alive_only=True):
    """The backend's machines (read through /control, which faults never hit)."""
    machines = simulator_process.control.state()["machines"]
    if alive_only:
        machines = [
            m for m in machines if m["state"] not in ("terminated", "failed", "interrupted")
        ]
    return machines
