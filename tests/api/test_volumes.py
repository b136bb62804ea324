"""/api/v1/volumes/: the same rules as the pages, through a token."""

import pytest

from portal.volumes.models import State, Volume
from tests.api.conftest import assert_error
from tests.volumes.conftest import set_storage


@pytest.fixture
def storage(team, catalog):
    set_storage(team.organization, catalog.us_east, 1000)
    set_storage(team.organization, catalog.eu_west, 50)


def test_create_list_get_resize_delete(
    api, team, storage, _no_broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/volumes/", {"name": "datasets", "region": "us-east-1", "size_gb": 100}
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["region"], body["size_gb"], body["state"]) == (
        "datasets",
        "us-east-1",
        100,
        "creating",
    )
    assert body["mount_path"] == "/data/datasets"
    assert ("volume_create", body["id"]) in _no_broker
    Volume.objects.filter(pk=body["id"]).update(state=State.AVAILABLE, backend_id="v-1")

    listed = api.get("/volumes/").json()
    assert [v["name"] for v in listed["results"]] == ["datasets"]
    assert api.get(f"/volumes/{body['id']}/").json()["attached_to"] == []

    grown = api.post(f"/volumes/{body['id']}/resize/", {"size_gb": 150})
    assert grown.status_code == 200 and grown.json()["size_gb"] == 150
    storage_quota = {q["region"]: q for q in api.get("/quotas/storage/").json()}
    assert storage_quota["us-east-1"]["used_gb"] == 150
    assert storage_quota["us-east-1"]["free_gb"] == 850

    assert_error(
        api.post(f"/volumes/{body['id']}/delete/", {"confirm_name": "wrong"}), 400, "invalid"
    )
    deleted = api.post(f"/volumes/{body['id']}/delete/", {"confirm_name": "datasets"})
    assert deleted.status_code == 202 and deleted.json()["state"] == "deleting"
    events = api.get(f"/volumes/{body['id']}/events/").json()
    assert events[0]["message"] == "Deleted by its owner."


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"size_gb": 0}, 400, "invalid"),
        ({"size_gb": -1}, 400, "invalid"),
        ({"size_gb": 1.5}, 400, "validation_error"),
        ({"size_gb": "10"}, 400, "validation_error"),
        ({"size_gb": 1001}, 409, "quota_exceeded"),
        ({"region": "mars-1"}, 400, "invalid"),
        ({"name": "Bad Name"}, 400, "invalid"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(api, storage, body, status, code):
    response = api.post(
        "/volumes/", {"name": "datasets", "region": "us-east-1", "size_gb": 100, **body}
    )
    assert_error(response, status, code)
    assert not Volume.objects.exists()


def test_resize_down_is_refused(api, team, catalog, storage):
    volume = Volume.objects.create(
        organization=team.organization, region=catalog.us_east, name="v", size_gb=100
    )
    error = assert_error(api.post(f"/volumes/{volume.pk}/resize/", {"size_gb": 10}), 400)
    assert "only grows" in error["message"]
    volume.refresh_from_db()
    assert volume.size_gb == 100


def test_another_organizations_volume_is_a_404(api, outsider, catalog, storage):
    theirs = Volume.objects.create(
        organization=outsider.organization, region=catalog.us_east, name="theirs", size_gb=10
    )
    for path in (f"/volumes/{theirs.pk}/", f"/volumes/{theirs.pk}/events/"):
        assert_error(api.get(path), 404, "not_found")
    assert_error(api.post(f"/volumes/{theirs.pk}/resize/", {"size_gb": 20}), 404, "not_found")
    assert_error(
        api.post(f"/volumes/{theirs.pk}/delete/", {"confirm_name": "theirs"}), 404, "not_found"
    )
    theirs.refresh_from_db()
    assert (theirs.size_gb, theirs.state) == (10, State.CREATING)


def test_launch_with_volumes_and_the_refusals(
    api, team, outsider, catalog, quota, ssh_key, storage
):
    ours = Volume.objects.create(
        organization=team.organization,
        region=catalog.us_east,
        name="datasets",
        size_gb=10,
        state=State.AVAILABLE,
        backend_id="v-ours",
    )
    eu = Volume.objects.create(
        organization=team.organization,
        region=catalog.eu_west,
        name="eu",
        size_gb=10,
        state=State.AVAILABLE,
        backend_id="v-eu",
    )
    theirs = Volume.objects.create(
        organization=outsider.organization,
        region=catalog.us_east,
        name="theirs",
        size_gb=10,
        state=State.AVAILABLE,
        backend_id="v-theirs",
    )
    launch = {
        "name": "train-1",
        "instance_type": "gpu_1x_h100",
        "region": "us-east-1",
        "image": catalog.ubuntu.code,
        "ssh_key_ids": [ssh_key.pk],
    }
    error = assert_error(api.post("/instances/", {**launch, "volume_ids": [eu.pk]}), 400)
    assert error["details"] == {
        "volume_ids": [
            "Volume eu is in eu-west-1; this instance launches in us-east-1. "
            "A volume attaches only in its own region."
        ]
    }
    error = assert_error(
        api.post("/instances/", {**launch, "volume_ids": [theirs.pk]}), 400, "not_found"
    )
    assert "no volume" in error["message"]
    assert not team.organization.instances.exists()

    response = api.post("/instances/", {**launch, "volume_ids": [ours.pk]})
    assert response.status_code == 201, response.content
    assert response.json()["volumes"] == [
        {"id": ours.pk, "name": "datasets", "mount_path": "/data/datasets"}
    ]
    attached = api.get(f"/volumes/{ours.pk}/").json()["attached_to"]
    assert [a["instance_name"] for a in attached] == ["train-1"]
    error = assert_error(
        api.post(f"/volumes/{ours.pk}/delete/", {"confirm_name": "datasets"}), 409, "attached"
    )
    assert "attached to train-1" in error["message"]


def test_a_storage_quota_request_through_the_api(api_as, team, storage):
    api = api_as(team.owner)
    response = api.post(
        "/quota-requests/",
        {
            "region": "us-east-1",
            "kind": "storage",
            "requested_limit": 5000,
            "justification": "Checkpoints of a 70B model.",
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["gpu_model"], body["requested_limit"]) == ("storage", None, 5000)
