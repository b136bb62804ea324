"""The cluster pages and API: launch, list, page with nodes, actions, and isolation."""

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

from portal.clusters.models import Cluster, State
from portal.instances.models import Instance
from tests.api.conftest import assert_error


@pytest.fixture
def member(team, client_for):
    return client_for(team.member.user)


def launch_form(catalog, ssh_key, **overrides) -> dict:
    return {
        "idempotency_key": "",
        "name": "train",
        "instance_type": catalog.h100_1x.code,
        "region": catalog.us_east.code,
        "image": catalog.ubuntu.code,
        "nodes": "2",
        "ssh_keys": [str(ssh_key.pk)],
        **overrides,
    }


def test_the_list_starts_empty_and_invites_a_first_cluster(member, quota):
    page = member.get("/o/acme/clusters/").content.decode()

    assert "No clusters yet" in page
    assert 'href="/o/acme/clusters/launch/"' in page


def test_launching_from_the_form_shows_the_cluster_and_its_nodes(member, catalog, quota, ssh_key):
    response = member.post("/o/acme/clusters/launch/", launch_form(catalog, ssh_key))

    cluster = Cluster.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/o/acme/clusters/{cluster.pk}/"
    page = member.get(response["Location"]).content.decode()
    assert "train-0" in page and "train-1" in page
    assert 'data-polling="on"' in page  # pending: the page watches it
    assert "once every node runs" in page


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ("1", "A cluster has at least 2 nodes"),
        ("0", "A cluster has at least 2 nodes"),
        ("99", "at most 16 nodes"),
        ("lots", "whole number from 2 to 16"),
    ],
)
def test_a_bad_node_count_is_shown_on_the_form_and_changes_nothing(
    member, catalog, quota, ssh_key, nodes, message
):
    response = member.post("/o/acme/clusters/launch/", launch_form(catalog, ssh_key, nodes=nodes))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Cluster.objects.exists() and not Instance.objects.exists()


def test_a_type_the_region_lacks_is_shown_on_the_form(member, catalog, quota, ssh_key):
    response = member.post(
        "/o/acme/clusters/launch/",
        launch_form(catalog, ssh_key, instance_type=catalog.l40s_1x.code),
    )

    assert response.status_code == 400
    assert "is not offered in US East" in response.content.decode()
    assert not Cluster.objects.exists()


def test_terminate_needs_the_typed_name(member, launch_cluster):
    cluster = launch_cluster()

    response = member.post(
        f"/o/acme/clusters/{cluster.pk}/terminate/", {"confirm_name": "nope"}, follow=True
    )

    assert "Type the cluster&#x27;s name, train, to confirm." in response.content.decode()
    cluster.refresh_from_db()
    assert cluster.state == State.PENDING


def test_another_organizations_cluster_is_a_404_everywhere(
    launch_cluster, outsider, client_for, api_as
):
    cluster = launch_cluster()
    rival = client_for(outsider.user)

    for url in (f"/o/rival/clusters/{cluster.pk}/", f"/o/acme/clusters/{cluster.pk}/"):
        assert rival.get(url).status_code == 404
    for action in ("stop", "terminate"):
        assert rival.post(f"/o/rival/clusters/{cluster.pk}/{action}/").status_code == 404
    api = api_as(outsider)
    assert_error(api.get(f"/clusters/{cluster.pk}/"), 404)
    assert_error(api.post(f"/clusters/{cluster.pk}/terminate/"), 404)
    assert api.get("/clusters/").json()["results"] == []
    cluster.refresh_from_db()
    assert cluster.state == State.PENDING


def test_the_api_launches_a_cluster_and_refuses_bad_node_counts(api, catalog, quota, ssh_key):
    body = {
        "name": "llm",
        "instance_type": catalog.h100_1x.code,
        "region": catalog.us_east.code,
        "image": catalog.ubuntu.code,
        "nodes": 1,
        "ssh_key_ids": [ssh_key.pk],
    }
    error = assert_error(api.post("/clusters/", body), 400)
    assert "at least 2 nodes" in error["message"]
    assert not Cluster.objects.exists()

    created = api.post("/clusters/", {**body, "nodes": 3})

    assert created.status_code == 201, created.content
    data = created.json()
    assert data["state"] == "pending"
    assert data["gpus"] == 3
    assert [n["name"] for n in data["nodes"]] == ["llm-0", "llm-1", "llm-2"]
    assert data["actions"] == ["terminate"]
    events = api.get(f"/clusters/{data['id']}/events/").json()
    assert events[0]["to_state"] == "pending"


def test_a_nodes_instance_page_points_to_its_cluster_and_offers_no_actions(member, launch_cluster):
    cluster = launch_cluster()
    node = cluster.nodes.get(node_index=1)

    page = member.get(f"/o/acme/instances/{node.pk}/").content.decode()

    assert "Node 1 of a cluster" in page
    assert f'href="/o/acme/clusters/{cluster.pk}/"' in page
    assert "Terminate instance" not in page
    assert 'data-testid="actions"' not in page


def test_staff_see_clusters_in_the_admin(launch_cluster, client, django_user_model):
    cluster = launch_cluster()
    staff = django_user_model.objects.create_superuser(email="ops@example.com", password="x" * 16)
    TOTP.activate(staff, generate_totp_secret())  # the admin needs two-factor
    client.force_login(staff)

    assert "train" in client.get("/admin/clusters/cluster/").content.decode()
    assert client.get(f"/admin/clusters/cluster/{cluster.pk}/change/").status_code == 200
