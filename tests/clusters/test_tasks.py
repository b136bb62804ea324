"""The cluster's one task against the real simulator (a subprocess), run in-process."""

import pytest
from django.core import mail

from portal.billing.models import UsageInterval
from portal.clusters.models import Cluster, State
from portal.instances.models import Instance
from portal.instances.models import State as NodeState
from portal.quotas.models import Kind, Quota
from tests.instances.conftest import machines_of

pytestmark = pytest.mark.slow


def used_gpus(team, catalog) -> int:
    return Quota.objects.get(
        organization=team.organization, region=catalog.us_east, gpu_model=catalog.h100
    ).used(Kind.ON_DEMAND)


def test_a_cluster_comes_up_whole_in_one_backend_call(simulator, launch_cluster, drive, team):
    calls_before = simulator.control.state()["stats"]["api_calls"]
    cluster = drive(launch_cluster("llm", nodes=3))

    assert cluster.state == State.RUNNING
    assert cluster.launched_at is not None
    nodes = list(cluster.nodes)
    assert {n.state for n in nodes} == {NodeState.RUNNING}
    assert [n.name for n in nodes] == ["llm-0", "llm-1", "llm-2"]
    head = nodes[0]
    assert head.ip and all(n.ip is None for n in nodes[1:])
    assert len({n.private_ip for n in nodes}) == 3
    # All nodes began billing together (one transaction), when the last one came up.
    starts = sorted(n.running_since for n in nodes)
    assert (starts[-1] - starts[0]).total_seconds() < 1
    machines = machines_of(simulator)
    assert sorted(m["id"] for m in machines) == sorted(n.backend_id for n in nodes)
    assert {m["hosts"] for m in machines} == {"".join(f"{n.private_ip} {n.name}\n" for n in nodes)}
    # One create and one look at all the nodes: no call per node.
    assert simulator.control.state()["stats"]["api_calls"] - calls_before == 1 + 1
    (message,) = mail.outbox  # one e-mail for the cluster, none per node
    assert message.to == [team.member.user.email]
    assert "llm is running" in message.subject
    assert head.ssh_command in message.body
    timeline = [e.to_state for e in cluster.events.all() if e.to_state]
    assert timeline == [State.PENDING, State.PROVISIONING, State.RUNNING]


def test_a_cluster_that_does_not_fit_whole_makes_nothing_and_says_how_many_fit(
    simulator, launch_cluster, drive, team, catalog
):
    # FLEET has 8 H100 nodes in us-east-1: nine whole-node machines never fit together.
    from tests.instances.conftest import set_quota

    set_quota(team.organization, catalog.us_east, catalog.h100, on_demand=72)
    cluster = drive(launch_cluster("big", nodes=9, instance_type=catalog.h100_8x.code))

    assert cluster.state == State.FAILED
    assert "Only 8 of them fit together right now" in cluster.state_reason
    assert "Nothing was created or billed" in cluster.state_reason
    assert {n.state for n in cluster.nodes} == {NodeState.FAILED}
    assert machines_of(simulator) == []
    assert used_gpus(team, catalog) == 0
    assert not UsageInterval.objects.exists()
    (message,) = mail.outbox
    assert "big failed" in message.subject
    assert "Only 8 of them fit" in message.body


def test_terminate_ends_every_node_and_gives_the_quota_back(
    simulator, launch_cluster, drive, team, catalog
):
    from portal.clusters import services

    cluster = drive(launch_cluster())
    assert used_gpus(team, catalog) == 2

    services.cluster_action(
        membership=team.member, cluster=cluster, action="terminate", confirm_name="train"
    )
    cluster = drive(cluster, "act")

    assert cluster.state == State.TERMINATED
    assert {n.state for n in cluster.nodes} == {NodeState.TERMINATED}
    assert machines_of(simulator) == []
    assert used_gpus(team, catalog) == 0
    assert not UsageInterval.objects.filter(end__isnull=True).exists()


def test_stop_and_start_move_all_nodes_together(simulator, launch_cluster, drive, team):
    from portal.clusters import services

    cluster = drive(launch_cluster())
    services.cluster_action(membership=team.member, cluster=cluster, action="stop")
    cluster = drive(cluster, "act")
    assert cluster.state == State.STOPPED
    assert {n.state for n in cluster.nodes} == {NodeState.STOPPED}

    services.cluster_action(membership=team.member, cluster=cluster, action="start")
    cluster = drive(cluster, "act")
    assert cluster.state == State.RUNNING
    assert {n.state for n in cluster.nodes} == {NodeState.RUNNING}


def test_a_node_that_fails_ends_the_whole_cluster(simulator, launch_cluster, drive, team):
    cluster = drive(launch_cluster(nodes=3))
    worker = cluster.nodes.get(node_index=2)
    simulator.control.fail(worker.backend_id, "GPU fell off the bus")

    cluster = drive(cluster, "poll")

    assert cluster.state == State.FAILED
    assert "train-2 failed" in cluster.state_reason
    states = {n.name: n.state for n in cluster.nodes}
    assert states == {
        "train-0": NodeState.TERMINATED,
        "train-1": NodeState.TERMINATED,
        "train-2": NodeState.FAILED,
    }
    assert machines_of(simulator) == []
    assert not UsageInterval.objects.filter(end__isnull=True).exists()


def test_the_task_run_twice_makes_no_second_cluster(simulator, launch_cluster, drive):
    cluster = launch_cluster()
    drive(cluster)
    cluster = drive(cluster, "provision")

    assert cluster.state == State.RUNNING
    assert len(machines_of(simulator)) == 2
    assert Instance.objects.filter(cluster_id=cluster.pk).count() == 2
    assert Cluster.objects.count() == 1


def test_a_node_stopped_by_a_rule_stops_the_whole_cluster(
    simulator, launch_cluster, drive, django_capture_on_commit_callbacks, settings
):
    from portal.instances import sync as instance_sync
    from portal.instances.services import instance_stop_by_system

    settings.CLUSTER_STALE_AFTER = 0
    cluster = drive(launch_cluster(nodes=3))
    node = cluster.nodes.get(node_index=2)

    with django_capture_on_commit_callbacks(execute=True):
        instance_stop_by_system(
            instance=node, message="Stopped: a rule.", label="budget_hard_limit"
        )
        instance_sync.reconcile()  # re-drives the cluster, which stops whole
    cluster.refresh_from_db()

    assert {n.state for n in cluster.nodes} == {NodeState.STOPPED}, [
        (n.name, n.state) for n in cluster.nodes
    ]
    assert cluster.state == State.STOPPED
    assert "stops whole" in " ".join(e.message for e in cluster.events.all())
