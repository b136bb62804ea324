"""Clusters in webhooks: cluster.state_changed, once per cluster transition."""

import json

import pytest

from portal.webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.slow


def test_a_cluster_coming_up_is_delivered_as_cluster_events_with_its_nodes(
    simulator, launch_cluster, drive, team, monkeypatch
):
    # The deliveries are recorded; sending them is the webhooks tests' business.
    monkeypatch.setattr("portal.webhooks.tasks.webhook_deliver.delay", lambda *args: None)
    WebhookEndpoint.objects.create(
        organization=team.organization,
        url="https://hooks.example.com/backfill",
        event_types=["cluster.state_changed"],
        secret_encrypted="x",
    )

    cluster = drive(launch_cluster("llm", nodes=2))

    bodies = [
        json.loads(d.body)
        for d in WebhookDelivery.objects.filter(event_type="cluster.state_changed").order_by("pk")
    ]
    assert [(b["data"]["from_state"], b["data"]["to_state"]) for b in bodies] == [
        ("pending", "provisioning"),
        ("provisioning", "running"),
    ]
    running = bodies[-1]["data"]
    assert running["cluster"]["id"] == cluster.pk
    assert running["cluster"]["nodes"] == 2
    assert running["cluster"]["head_ip"] == cluster.head().ip
    assert [n["name"] for n in running["nodes"]] == ["llm-0", "llm-1"]
    assert all(n["private_ip"] for n in running["nodes"])
