"""The volume pages: list (with its empty state), create, detail with resize, delete."""

import pytest

from portal.volumes.models import State, Volume

pytestmark = pytest.mark.slow


def test_the_list_shows_an_empty_state_with_a_way_to_start(team, client_for, storage):
    response = client_for(team.member.user).get("/o/acme/volumes/")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="volumes-empty"' in page
    assert "/o/acme/volumes/new/" in page
    assert "1000 GB" in page  # the storage quota


def test_a_viewer_sees_the_list_but_cannot_create(team, client_for, storage):
    client = client_for(team.viewer.user)
    assert client.get("/o/acme/volumes/").status_code == 200
    assert "/o/acme/volumes/new/" not in client.get("/o/acme/volumes/").content.decode()
    response = client.post(
        "/o/acme/volumes/new/", {"name": "x", "region": "us-east-1", "size_gb": "10"}
    )
    assert response.status_code == 403
    assert not Volume.objects.exists()


def test_create_from_the_page(
    team, client_for, storage, simulator, eager, django_capture_on_commit_callbacks
):
    client = client_for(team.member.user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/o/acme/volumes/new/", {"name": "datasets", "region": "us-east-1", "size_gb": "100"}
        )
    volume = Volume.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/o/acme/volumes/{volume.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert "/data/datasets" in page
    assert "Available" in page
    assert "Not attached" in page
    listing = client.get("/o/acme/volumes/").content.decode()
    assert 'data-testid="volume-datasets"' in listing


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"size_gb": "0"}, "at least 1 GB"),
        ({"size_gb": "2.5"}, "whole number of GB"),
        ({"size_gb": "ten"}, "whole number of GB"),
        ({"size_gb": "5000"}, "your storage limit there is 1000 GB"),
        ({"region": "mars-1"}, "There is no such region"),
        ({"name": "Bad Name"}, "not a valid name"),
    ],
)
def test_bad_input_on_the_form_shows_a_message_and_changes_nothing(
    team, client_for, storage, data, message
):
    form = {"name": "datasets", "region": "us-east-1", "size_gb": "100", **data}
    response = client_for(team.member.user).post("/o/acme/volumes/new/", form)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Volume.objects.exists()


def test_over_the_quota_the_form_links_to_a_storage_request(team, client_for, storage):
    response = client_for(team.member.user).post(
        "/o/acme/volumes/new/", {"name": "big", "region": "us-east-1", "size_gb": "5000"}
    )
    assert 'data-testid="quota-link"' in response.content.decode()
    assert "kind=storage" in response.content.decode()


def test_resize_on_the_detail_page(
    team, client_for, make_volume, django_capture_on_commit_callbacks
):
    volume = make_volume(size_gb=100)
    client = client_for(team.member.user)
    response = client.post(f"/o/acme/volumes/{volume.pk}/", {"size_gb": "50"})
    assert response.status_code == 400
    assert "a volume only grows" in response.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/o/acme/volumes/{volume.pk}/", {"size_gb": "300"})
    assert response.status_code == 302
    volume.refresh_from_db()
    assert volume.size_gb == 300


def test_delete_asks_for_the_name_then_deletes(
    team, client_for, make_volume, django_capture_on_commit_callbacks
):
    volume = make_volume("datasets")
    client = client_for(team.member.user)
    page = client.get(f"/o/acme/volumes/{volume.pk}/delete/").content.decode()
    assert "deleted for good" in page
    response = client.post(f"/o/acme/volumes/{volume.pk}/delete/", {"confirm_name": "nope"})
    assert response.status_code == 400
    assert "Type the volume&#x27;s name, datasets" in response.content.decode()
    volume.refresh_from_db()
    assert volume.state == State.AVAILABLE
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/o/acme/volumes/{volume.pk}/delete/", {"confirm_name": "datasets"})
    assert response.status_code == 302
    volume.refresh_from_db()
    assert volume.state == State.DELETED
    assert 'data-testid="volumes-empty"' in client.get("/o/acme/volumes/").content.decode()


def test_another_organizations_volume_is_a_404(outsider, client_for, make_volume):
    volume = make_volume("datasets")
    client = client_for(outsider.user)
    for url in (f"/o/rival/volumes/{volume.pk}/", f"/o/rival/volumes/{volume.pk}/delete/"):
        assert client.get(url).status_code == 404
        assert client.post(url, {"confirm_name": "datasets", "size_gb": "500"}).status_code == 404
    volume.refresh_from_db()
    assert (volume.state, volume.size_gb) == (State.AVAILABLE, 100)


# Launching with volumes from the launch page


def _launch_data(catalog, ssh_key, **overrides):
    import uuid

    return {
        "idempotency_key": str(uuid.uuid4()),
        "instance_type": "gpu_1x_h100",
        "region": "us-east-1",
        "image": catalog.ubuntu.code,
        "ssh_keys": [str(ssh_key.pk)],
        "name": "train-1",
        **overrides,
    }


def test_the_launch_page_offers_the_volumes_and_ticks_the_one_asked_for(
    team, client_for, make_volume, quota
):
    volume = make_volume("datasets")
    page = client_for(team.member.user).get(f"/o/acme/instances/launch/?volume={volume.pk}")
    text = page.content.decode()
    assert 'data-testid="volumes"' in text
    assert f'name="volumes" value="{volume.pk}" checked' in text


def test_launching_with_a_volume_from_the_page_attaches_it(
    team, client_for, make_volume, catalog, quota, ssh_key, django_capture_on_commit_callbacks
):
    from portal.instances.models import Instance
    from portal.instances.models import State as InstanceState

    volume = make_volume("datasets")
    client = client_for(team.member.user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/o/acme/instances/launch/", _launch_data(catalog, ssh_key, volumes=[str(volume.pk)])
        )
    instance = Instance.objects.get()
    assert response.status_code == 302
    assert instance.state == InstanceState.RUNNING
    detail = client.get(response["Location"]).content.decode()
    assert 'data-testid="instance-volumes"' in detail
    assert "/data/datasets" in detail
    volume_page = client.get(f"/o/acme/volumes/{volume.pk}/").content.decode()
    assert 'data-testid="attached"' in volume_page
    assert "train-1" in volume_page


@pytest.mark.parametrize("which", ["other region", "other organization", "unknown"])
def test_a_volume_that_cannot_attach_is_a_clear_error_on_the_page(
    team, outsider, client_for, make_volume, catalog, quota, ssh_key, which
):
    from portal.instances.models import Instance
    from tests.volumes.conftest import set_storage

    if which == "other region":
        volume_id, message = (
            make_volume("eu", size_gb=5, region=catalog.eu_west).pk,
            "is in eu-west-1",
        )
    elif which == "other organization":
        set_storage(outsider.organization, catalog.us_east, 10)
        volume_id, message = make_volume("x", size_gb=5, membership=outsider).pk, "no volume"
    else:
        volume_id, message = 999999, "no volume #999999"
    response = client_for(team.member.user).post(
        "/o/acme/instances/launch/", _launch_data(catalog, ssh_key, volumes=[str(volume_id)])
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Instance.objects.exists()
