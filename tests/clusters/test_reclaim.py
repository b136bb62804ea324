"""A preemptible cluster is reclaimed whole, with notice: one notice for the cluster (e-mail,
webhook, page), then every node ends at the same second and billing stops."""

import json
import time

import pytest
from django.core import mail

from portal.billing.models import UsageInterval
from portal.clusters.models import State
from portal.instances.models import State as NodeState
from portal.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.instances.conftest import machines_of

pytestmark = pytest.mark.slow


def test_a_reclaim_of_one_node_takes_the_whole_cluster_with_one_notice(
    simulator, launch_cluster, drive, team, client_for, monkeypatch
):
    monkeypatch.setattr("portal.webhooks.tasks.webhook_deliver.delay", lambda *args: None)
    WebhookEndpoint.objects.create(
        organization=team.organization,
        url="https://hooks.example.com/backfill",
        event_types=["cluster.interruption_notice", "cluster.state_changed"],
        secret_encrypted="x",
    )
    cluster = drive(launch_cluster("spot", nodes=3, preemptible=True))
    assert cluster.state == State.RUNNING
    mail.outbox.clear()
    worker = cluster.nodes.get(node_index=1)

    simulator.control.reclaim(machine_ids=[worker.backend_id], notice_seconds=2)
    cluster = drive(cluster, "poll")

    assert cluster.state == State.RUNNING
    assert cluster.reclaim_at is not None
    (notice,) = mail.outbox  # one for the cluster, none per node
    assert "spot will be reclaimed" in notice.subject
    assert "All 3 nodes will be interrupted" in notice.body
    page = client_for(team.member.user).get(f"/o/acme/clusters/{cluster.pk}/").content.decode()
    assert "all 3 nodes are interrupted at" in page
    notices = WebhookDelivery.objects.filter(event_type="cluster.interruption_notice")
    assert notices.count() == 1
    assert json.loads(notices.get().body)["data"]["cluster"]["nodes"] == 3

    time.sleep(2.5)
    cluster = drive(cluster, "poll")

    assert cluster.state == State.INTERRUPTED
    assert {n.state for n in cluster.nodes} <= {NodeState.INTERRUPTED, NodeState.TERMINATED}
    assert machines_of(simulator) == []
    assert not UsageInterval.objects.filter(end__isnull=True).exists()
    assert any("spot was reclaimed" in m.subject for m in mail.outbox)
