"""Launching a cluster: what is recorded, and bad input that changes nothing."""

import pytest

from portal.clusters import services
from portal.clusters.models import Cluster, State
from portal.instances import services as instance_services
from portal.instances.models import Instance
from portal.instances.models import State as NodeState
from portal.lib.clusternaming import cluster_node_request_id
from portal.lib.errors import ApplicationError
from portal.quotas.models import Kind, Quota
from portal.quotas.services import QuotaExceeded


def used_gpus(team, catalog) -> int:
    quota = Quota.objects.get(
        organization=team.organization, region=catalog.us_east, gpu_model=catalog.h100
    )
    return quota.used(Kind.ON_DEMAND)


def nothing_written(team, catalog) -> None:
    assert Cluster.objects.count() == 0
    assert Instance.objects.count() == 0
    assert used_gpus(team, catalog) == 0


def test_a_launch_records_the_cluster_its_nodes_and_one_task(
    launch_cluster, team, catalog, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        cluster = launch_cluster("llm", nodes=3)

    assert cluster.state == State.PENDING
    assert cluster.gpus == 3
    nodes = list(cluster.nodes)
    assert [n.name for n in nodes] == ["llm-0", "llm-1", "llm-2"]
    assert {n.state for n in nodes} == {NodeState.PENDING}
    assert [str(n.request_id) for n in nodes] == [
        cluster_node_request_id(str(cluster.request_id), i) for i in range(3)
    ]
    # One task for the whole cluster, none per node (the other callbacks are not tasks).
    tasks = [c for c in callbacks if c.__module__.endswith(".tasks")]
    assert [t.__module__ for t in tasks] == ["portal.clusters.tasks"]


def test_the_quota_counts_every_gpu_of_the_cluster(launch_cluster, team, catalog):
    launch_cluster("two", nodes=2, instance_type=catalog.h100_8x.code)

    assert used_gpus(team, catalog) == 16
    with pytest.raises(QuotaExceeded):
        launch_cluster("more", nodes=2)
    assert Cluster.objects.count() == 1
    assert Instance.objects.count() == 2


def test_the_same_launch_form_twice_makes_one_cluster(launch_cluster):
    key = "0b3c6f5e-9a57-4c1e-9d1e-2f4f1a2b3c4d"
    first = launch_cluster(idempotency_key=key)
    again = launch_cluster(idempotency_key=key)

    assert again.pk == first.pk
    assert Instance.objects.count() == 2


@pytest.mark.parametrize(
    ("nodes", "code"),
    [(0, "too_few"), (1, "too_few"), (17, "too_many"), ("two", "invalid"), ("", "invalid")],
)
def test_a_node_count_outside_two_to_the_maximum_is_refused(
    launch_cluster, team, catalog, nodes, code
):
    with pytest.raises(ApplicationError) as refused:
        launch_cluster(nodes=nodes)

    assert refused.value.code == code
    assert refused.value.field == "nodes"
    nothing_written(team, catalog)


def test_the_maximum_is_the_operators_setting(launch_cluster, settings):
    settings.CLUSTER_MAX_NODES = 3
    with pytest.raises(ApplicationError, match="at most 3 nodes"):
        launch_cluster(nodes=4)
    assert launch_cluster(nodes=3).node_count == 3


def test_a_type_the_region_lacks_is_refused(launch_cluster, team, catalog):
    with pytest.raises(ApplicationError, match="not offered in EU West") as refused:
        launch_cluster(instance_type=catalog.h100_8x.code, region=catalog.eu_west.code)

    assert refused.value.code == "not_offered"
    nothing_written(team, catalog)


def test_a_name_in_use_is_refused(launch_cluster, team, catalog):
    launch_cluster("train")

    with pytest.raises(ApplicationError, match="already have a cluster named") as refused:
        launch_cluster("train")

    assert refused.value.code == "name_taken"
    assert Cluster.objects.count() == 1


def test_a_cluster_whose_node_names_an_instance_has_is_refused(
    launch_cluster, launch, team, catalog
):
    launch("web-1")

    with pytest.raises(ApplicationError, match="instance named “web-1”"):
        launch_cluster("web")

    assert Cluster.objects.count() == 0
    assert Instance.objects.count() == 1


def test_a_node_cannot_be_stopped_or_terminated_on_its_own(launch_cluster, team):
    cluster = launch_cluster()
    node = cluster.nodes.first()

    for action in ("stop", "terminate"):
        with pytest.raises(ApplicationError, match="node of a cluster") as refused:
            instance_services.instance_action(membership=team.member, instance=node, action=action)
        assert refused.value.code == "cluster_node"
    node.refresh_from_db()
    assert node.state == NodeState.PENDING


def test_terminate_with_the_wrong_name_changes_nothing(launch_cluster, team):
    cluster = launch_cluster()

    with pytest.raises(ApplicationError, match="Type the cluster's name, train"):
        services.cluster_action(
            membership=team.member, cluster=cluster, action="terminate", confirm_name="trian"
        )

    cluster.refresh_from_db()
    assert cluster.state == State.PENDING
