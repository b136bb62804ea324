"""The cluster pages and API: launch, list, page with nodes, actions, and isolation."""

import re

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.clusters.models import Cluster, State
from portal.instances.models import Instance
from tests.api.conftest import assert_error
from tests.instances.conftest import set_quota


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


def running(cluster: Cluster) -> None:
    """The cluster and its nodes as the cluster's task leaves them once all run."""
    Cluster.objects.filter(pk=cluster.pk).update(state=State.RUNNING)
    for node in Instance.objects.filter(cluster_id=cluster.pk):
        Instance.objects.filter(pk=node.pk).update(
            state="running",
            backend_id=f"m-{cluster.pk}-{node.node_index}",
            private_ip=f"10.9.0.{node.node_index + 1}",
            ip="203.0.113.7" if node.node_index == 0 else None,
        )


def test_a_running_clusters_page_lists_its_nodes_and_the_heads_ssh_command(member, launch_cluster):
    cluster = launch_cluster(nodes=3)
    running(cluster)

    page = member.get(f"/o/acme/clusters/{cluster.pk}/").content.decode()

    assert "ssh ubuntu@203.0.113.7" in page
    assert "That is the head node, train-0." in page
    rows = re.findall(r'<tr data-testid="node">.*?</tr>', page)
    assert [re.search(r"train-\d", row)[0] for row in rows] == ["train-0", "train-1", "train-2"]
    assert ">head<" in rows[0] and not any(">head<" in row for row in rows[1:])
    assert all("10.9.0." in row and "Running" in row for row in rows)
    assert "3 of 3 nodes running" in page
    assert 'data-polling="off"' in page


def test_the_cluster_page_reads_as_much_for_16_nodes_as_for_2(
    member, launch_cluster, team, catalog
):
    set_quota(team.organization, catalog.us_east, catalog.h100, on_demand=32)
    small, large = launch_cluster("small", nodes=2), launch_cluster("large", nodes=16)
    running(small)
    running(large)
    counts = []
    for cluster in (small, large):
        member.get(f"/o/acme/clusters/{cluster.pk}/")
        with CaptureQueriesContext(connection) as queries:
            page = member.get(f"/o/acme/clusters/{cluster.pk}/").content.decode()
        assert page.count('<tr data-testid="node">') == cluster.node_count
        counts.append(len(queries))

    assert counts[0] == counts[1]
