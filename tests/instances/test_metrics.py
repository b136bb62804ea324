"""The instance figures of /metrics: instances by state, capacity, launches, failures, reclaims."""

import pytest

from portal.instances import lifecycle
from portal.instances.capacity import capacity_snapshot_store
from portal.instances.models import State
from portal.provisioning import Capacity
from tests.runtime.scraping import counted, sample, scraper

pytestmark = pytest.mark.django_db


@pytest.fixture
def scrape(client, settings):
    return scraper(client, settings)


def test_instances_by_state_region_and_type(scrape, make_instance, catalog):
    make_instance(State.RUNNING)
    make_instance(State.RUNNING)
    make_instance(State.PROVISIONING, region=catalog.eu_west)
    make_instance(State.TERMINATED, instance_type=catalog.h100_8x, gpus=8)

    text = scrape()

    def instances(state, region, itype):
        return sample(text, "backfill_instances", state=state, region=region, instance_type=itype)

    assert instances("running", "us-east-1", "gpu_1x_h100") == 2
    assert instances("provisioning", "eu-west-1", "gpu_1x_h100") == 1
    assert instances("terminated", "us-east-1", "gpu_8x_h100") == 1


def test_capacity_per_region_and_gpu_model(scrape, make_instance, catalog):
    capacity_snapshot_store(
        capacities=[
            Capacity("us-east-1", "gpu_1x_h100", "H100 80GB", 20, 64, 20),
            Capacity("us-east-1", "gpu_8x_h100", "H100 80GB", 20, 64, 2),
            Capacity("eu-west-1", "gpu_1x_l40s", "L40S 48GB", 8, 8, 8),
        ]
    )
    make_instance(State.RUNNING)  # 1 GPU sold
    make_instance(State.RUNNING, instance_type=catalog.h100_8x, gpus=8)  # 8 more
    make_instance(State.STOPPED)  # gave its GPUs back
    make_instance(State.TERMINATED)

    text = scrape()

    def gpus(region, model, kind):
        return sample(text, "backfill_capacity_gpus", region=region, gpu_model=model, kind=kind)

    assert gpus("us-east-1", "h100", "fleet") == 64
    assert gpus("us-east-1", "h100", "free") == 20
    assert gpus("us-east-1", "h100", "sold") == 9
    assert gpus("us-east-1", "h100", "internal") == 64 - 20 - 9  # the operator's own use
    assert gpus("eu-west-1", "l40s", "free") == 8
    assert gpus("eu-west-1", "l40s", "internal") == 0


def test_internal_use_is_what_the_backend_reports_when_it_reports_it(scrape, make_instance):
    capacity_snapshot_store(
        capacities=[
            Capacity(
                "us-east-1", "gpu_1x_h100", "H100 80GB", 10, 64, 10,
                internal_gpus=40, customer_gpus=14,
            ),
        ]
    )  # fmt: skip
    make_instance(State.RUNNING)  # 1 GPU sold through the portal

    text = scrape()

    assert (
        sample(
            text, "backfill_capacity_gpus", region="us-east-1", gpu_model="h100", kind="internal"
        )
        == 40
    )  # the operator's jobs, not 64 - 10 - 1


def test_launches_failures_and_reclaims_are_counted_once_committed(
    launch, make_instance, django_capture_on_commit_callbacks
):
    before = [
        counted("backfill_instance_launches_total", region="us-east-1"),
        counted("backfill_instance_failures_total", region="us-east-1"),
        counted("backfill_instance_reclaims_total", region="us-east-1"),
    ]
    failing = make_instance(State.PROVISIONING)
    preemptible = make_instance(State.RUNNING, preemptible=True)

    with django_capture_on_commit_callbacks(execute=True):
        launch("counted")
        lifecycle.mark_failed(failing.pk, reason="the backend lost it")
        lifecycle.mark_interrupted(preemptible.pk)

    after = [
        counted("backfill_instance_launches_total", region="us-east-1"),
        counted("backfill_instance_failures_total", region="us-east-1"),
        counted("backfill_instance_reclaims_total", region="us-east-1"),
    ]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]


def test_a_rolled_back_launch_is_not_counted(launch, django_capture_on_commit_callbacks):
    before = counted("backfill_instance_launches_total", region="us-east-1")

    with django_capture_on_commit_callbacks(execute=False):
        launch("never-committed")

    assert counted("backfill_instance_launches_total", region="us-east-1") == before
