"""The events the other domains emit, from the transactions that make the change."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from portal.instances import lifecycle
from portal.instances.models import State
from portal.quotas import services as quota_services
from portal.quotas.models import QuotaRequest
from portal.quotas.services import Decision
from portal.webhooks.models import EventType, WebhookDelivery
from portal.webhooks.services import webhook_endpoint_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _recorded(monkeypatch):
    sent = []
    monkeypatch.setattr("portal.webhooks.tasks.webhook_deliver.delay", sent.append)
    for name in ("provision", "stop", "start", "reboot", "terminate"):
        monkeypatch.setattr(f"portal.instances.tasks.instance_{name}.delay", lambda pk: None)
    return sent


@pytest.fixture
def listening(team):
    endpoint, _ = webhook_endpoint_create(
        membership=team.owner, url="https://hooks.example.com/b", event_types=EventType.values
    )
    return endpoint


def events(event_type: str) -> list[dict]:
    return [
        json.loads(d.body)
        for d in WebhookDelivery.objects.filter(event_type=event_type).order_by("id")
    ]


def test_every_instance_transition_is_an_event(
    team, listening, make_instance, _recorded, django_capture_on_commit_callbacks
):
    instance = make_instance(State.RUNNING)

    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.request_stop(instance.pk, actor=team.member.user)
        lifecycle.mark_stopped(instance.pk)

    sent = events("instance.state_changed")
    assert [(e["data"]["from_state"], e["data"]["to_state"]) for e in sent] == [
        ("running", "stopping"),
        ("stopping", "stopped"),
    ]
    assert sent[0]["data"]["instance"]["name"] == instance.name
    assert sent[0]["data"]["instance"]["region"] == "us-east-1"
    assert len(_recorded) == 2


def test_a_transition_asked_twice_is_one_event(team, listening, make_instance):
    instance = make_instance(State.RUNNING)

    lifecycle.request_stop(instance.pk)
    lifecycle.request_stop(instance.pk)

    assert len(events("instance.state_changed")) == 1


def test_a_reclaim_notice_is_an_interruption_notice_event_once(team, listening, make_instance):
    instance = make_instance(State.RUNNING, preemptible=True)
    at = timezone.now() + timedelta(minutes=2)

    assert lifecycle.note_reclaim(instance.pk, reclaim_at=at)
    assert not lifecycle.note_reclaim(instance.pk, reclaim_at=at)

    [event] = events("instance.interruption_notice")
    assert event["data"]["instance"]["id"] == instance.pk
    assert event["data"]["instance"]["preemptible"] is True
    assert event["data"]["reclaim_at"].startswith(at.strftime("%Y-%m-%dT%H:%M"))


def test_a_quota_decision_is_an_event(team, listening, catalog):
    quota_request = quota_services.quota_request_submit(
        membership=team.owner,
        region="us-east-1",
        gpu_model="h100",
        kind="on_demand",
        requested_limit=24,
        justification="Training.",
    )
    quota_services.quota_request_decide(
        quota_request=quota_request,
        decision=Decision.APPROVE,
        granted_limit=16,
        message="16 for now.",
        decided_by=UserFactory(is_staff=True),
    )

    [event] = events("quota.decided")
    data = event["data"]
    assert data["quota_request"]["id"] == quota_request.pk
    assert data["quota_request"]["state"] == "partly_approved"
    assert (data["quota_request"]["requested_limit"], data["quota_request"]["granted_limit"]) == (
        24,
        16,
    )
    assert data["message"] == "16 for now."
    assert QuotaRequest.objects.get().state == "partly_approved"


def test_no_endpoint_no_delivery(team, make_instance):
    instance = make_instance(State.RUNNING)

    lifecycle.request_stop(instance.pk)

    assert not WebhookDelivery.objects.exists()
