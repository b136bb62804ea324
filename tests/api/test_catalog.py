"""/instance-types/, /regions/, /images/, /availability/: what can be launched, where, now."""

import pytest

from portal.api.models import Scope
from portal.instances.capacity import capacity_snapshot_store
from portal.provisioning import Capacity
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db


def test_instance_types_with_the_price_in_force(api, catalog):
    response = api.get("/instance-types/")

    assert response.status_code == 200
    types = {t["code"]: t for t in response.json()}
    # Inactive and unpriced types are not offered; the inactive region is not listed.
    assert set(types) == {"gpu_1x_h100", "gpu_8x_h100", "gpu_1x_l40s"}
    h100 = types["gpu_1x_h100"]
    assert h100["gpu_model"] == {"code": "h100", "name": "NVIDIA H100 80GB", "memory_gb": 80}
    assert h100["gpu_count"] == 1
    assert h100["regions"] == ["eu-west-1", "us-east-1"]
    assert h100["price"]["on_demand_hourly"] == "2.4900"
    assert h100["price"]["preemptible_hourly"] == "1.2900"
    assert h100["price"]["on_demand_monthly"] == "1817.70"
    assert h100["price"]["currency"] == "USD"


def test_regions_and_images_are_the_active_ones(api, catalog):
    regions = api.get("/regions/").json()
    images = api.get("/images/").json()

    assert [r["code"] for r in regions] == ["eu-west-1", "us-east-1"]
    assert regions[0] == {"code": "eu-west-1", "name": "EU West", "location": "Dublin"}
    assert [i["code"] for i in images] == ["ubuntu-22.04-cuda-12.4"]


def test_availability_without_a_snapshot_says_unknown(api, catalog):
    body = api.get("/availability/").json()

    assert body["taken_at"] is None and body["fresh"] is False
    assert {"region": "us-east-1", "instance_type": "gpu_8x_h100", "free_instances": None} in (
        body["entries"]
    )


def test_availability_is_the_snapshot_less_launches_since(api, catalog, launch):
    capacity_snapshot_store(
        capacities=[
            Capacity(
                region="us-east-1",
                instance_type="gpu_1x_h100",
                gpu_model="H100 80GB",
                free_instances=3,
                free_gpus=3,
                total_gpus=8,
            )
        ]
    )
    launch("one")

    body = api.get("/availability/").json()

    assert body["fresh"] is True and body["taken_at"]
    entries = {(e["region"], e["instance_type"]): e["free_instances"] for e in body["entries"]}
    assert entries[("us-east-1", "gpu_1x_h100")] == 2
    assert entries[("eu-west-1", "gpu_1x_h100")] is None


@pytest.mark.parametrize("role", ["owner", "admin", "member", "billing", "viewer"])
def test_every_role_reads_the_catalog(team, api_as, catalog, role):
    api = api_as(team.by_role(role), scope=Scope.READ)
    for path in ("/instance-types/", "/regions/", "/images/", "/availability/"):
        assert api.get(path).status_code == 200


def test_the_catalog_is_read_only(api, catalog):
    assert_error(api.post("/regions/", {}), 405, "method_not_allowed")


def test_price_history_newest_first(team, api_as, catalog):
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from portal.catalog.models import Price

    Price.objects.create(
        instance_type=catalog.h100_1x,
        valid_from=timezone.now() + timedelta(days=30),
        on_demand_hourly=Decimal("1.99"),
        preemptible_hourly=Decimal("0.99"),
    )
    api = api_as(team.viewer)

    history = api.get("/price-history/", {"instance_type": catalog.h100_1x.code}).json()

    prices = [p["on_demand_hourly"] for p in history["results"]]
    assert prices[0] == "1.9900" and len(prices) >= 2
    assert {p["instance_type"] for p in history["results"]} == {catalog.h100_1x.code}
    assert api.get("/price-history/", {"instance_type": "nope"}).json()["count"] == 0
