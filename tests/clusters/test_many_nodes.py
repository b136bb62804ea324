"""A cluster's nodes move together (one write per move for all of them), and what a customer
or the operator sees of each node is what they would see of an instance moved alone."""

import json
from collections import Counter

import pytest
from django.core import mail

from portal.audit.models import AuditEntry
from portal.billing.models import InstanceMeter, UsageInterval
from portal.clusters import services
from portal.clusters.models import State
from portal.instances.models import InstanceEvent
from portal.instances.models import State as NodeState
from portal.quotas.models import Kind, Quota
from portal.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.instances.conftest import set_quota

pytestmark = pytest.mark.slow

NODES = 20


@pytest.fixture
def room(team, catalog, quota, settings):
    settings.CLUSTER_MAX_NODES = 32
    set_quota(team.organization, catalog.us_east, catalog.h100, on_demand=64)


@pytest.fixture
def endpoints(team, monkeypatch):
    """Two endpoints that subscribe to instance events, one that does not, one switched off."""
    # The deliveries are recorded; sending them is the webhooks tests' business.
    monkeypatch.setattr("portal.webhooks.tasks.webhook_deliver.delay", lambda *args: None)

    def endpoint(event_types, active=True):
        return WebhookEndpoint.objects.create(
            organization=team.organization,
            url="https://hooks.example.com/backfill",
            event_types=event_types,
            secret_encrypted="x",
            active=active,
        )

    return [
        endpoint(["instance.state_changed"]),
        endpoint(["instance.state_changed", "cluster.state_changed"]),
        endpoint(["cluster.state_changed"]),
        endpoint(["instance.state_changed"], active=False),
    ]


def used_gpus(team, catalog) -> int:
    return Quota.objects.get(
        organization=team.organization, region=catalog.us_east, gpu_model=catalog.h100
    ).used(Kind.ON_DEMAND)


def instance_deliveries(endpoint) -> list[dict]:
    return [
        json.loads(d.body)
        for d in WebhookDelivery.objects.filter(
            endpoint=endpoint, event_type="instance.state_changed"
        ).order_by("pk")
    ]


def test_each_node_of_a_20_node_cluster_is_told_of_once_per_move(
    simulator, room, launch_cluster, drive, team, catalog, endpoints
):
    cluster = drive(launch_cluster("big", nodes=NODES))

    assert cluster.state == State.RUNNING
    nodes = list(cluster.nodes)
    assert len(nodes) == NODES
    assert {node.state for node in nodes} == {NodeState.RUNNING}
    assert used_gpus(team, catalog) == NODES
    for node in nodes:
        # Its timeline: launched, asked for, running, once each.
        assert [e.to_state for e in node.events.order_by("at", "pk") if e.to_state] == [
            NodeState.PENDING,
            NodeState.PROVISIONING,
            NodeState.RUNNING,
        ]
        assert node.running_since is not None
    head = nodes[0]
    running = InstanceEvent.objects.get(instance=head, to_state=NodeState.RUNNING)
    assert running.message.endswith(f"Running at {head.ip}.")
    # Billed from the second all ran: one open interval per node, at the type's price.
    usage = UsageInterval.objects.filter(instance__cluster_id=cluster.pk)
    assert Counter(usage.values_list("instance_id", flat=True)) == {n.pk: 1 for n in nodes}
    assert {(u.end, u.kind, u.cluster) for u in usage} == {(None, "on_demand", True)}
    assert InstanceMeter.objects.filter(instance__cluster_id=cluster.pk).count() == NODES
    # The audit log has each node's two moves.
    audit = AuditEntry.objects.filter(
        action="instance.state_changed", target_type="instances.instance"
    )
    assert Counter(audit.values_list("target_id", flat=True)) == {str(n.pk): 2 for n in nodes}
    assert {a.detail["to"] for a in audit} == {NodeState.PROVISIONING, NodeState.RUNNING}
    # One delivery per node and move for each active endpoint that subscribes, none otherwise.
    subscribed, both, cluster_only, inactive = endpoints
    for endpoint in (subscribed, both):
        bodies = instance_deliveries(endpoint)
        moves = Counter(
            (b["data"]["instance"]["id"], b["data"]["from_state"], b["data"]["to_state"])
            for b in bodies
        )
        assert moves == {
            **{(n.pk, "pending", "provisioning"): 1 for n in nodes},
            **{(n.pk, "provisioning", "running"): 1 for n in nodes},
        }
        assert len({b["id"] for b in bodies}) == 2 * NODES  # an event id per node and move
        head_running = next(
            b
            for b in bodies
            if b["data"]["instance"]["id"] == head.pk and b["data"]["to_state"] == "running"
        )
        assert head_running["data"]["instance"]["ip"] == head.ip
    assert {b["id"] for b in instance_deliveries(subscribed)} == {
        b["id"] for b in instance_deliveries(both)
    }
    assert instance_deliveries(cluster_only) == instance_deliveries(inactive) == []
    # One e-mail: the cluster's, none per node.
    (message,) = mail.outbox
    assert "big is running" in message.subject


def test_terminating_a_20_node_cluster_ends_each_node_once_and_gives_every_gpu_back(
    simulator, room, launch_cluster, drive, team, catalog
):
    cluster = drive(launch_cluster("big", nodes=NODES))

    services.cluster_action(
        membership=team.member, cluster=cluster, action="terminate", confirm_name="big"
    )
    cluster = drive(cluster, "act")

    assert cluster.state == State.TERMINATED
    nodes = list(cluster.nodes)
    assert {node.state for node in nodes} == {NodeState.TERMINATED}
    assert used_gpus(team, catalog) == 0
    for node in nodes:
        steps = [e.to_state for e in node.events.all() if e.to_state]
        assert steps.count(NodeState.TERMINATING) == steps.count(NodeState.TERMINATED) == 1
        assert node.terminated_at is not None and node.ip is None
    # Billing stopped for each node at its termination: nothing is open (the nodes ran for
    # less than a second here, which bills nothing).
    usage = UsageInterval.objects.filter(instance__cluster_id=cluster.pk)
    assert not usage.filter(end__isnull=True).exists()
    assert all(
        count <= 1 for count in Counter(usage.values_list("instance_id", flat=True)).values()
    )
