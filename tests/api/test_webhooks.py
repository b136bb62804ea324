"""/webhooks/: endpoints and their delivery log, for owners and admins, as on the webhooks page.

The signing secret is in the answer of create and roll-secret only; deliveries are written by
portal.webhooks and listed with their attempts.
"""

import json

import pytest

from portal.webhooks import secrets
from portal.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from portal.webhooks.services import webhook_endpoint_create, webhook_send_test
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db

URL = "https://hooks.example.com/backfill"


def test_register_an_endpoint_and_get_its_secret_once(team, api_as):
    api = api_as(team.admin)

    response = api.post(
        "/webhooks/",
        {"url": URL, "event_types": ["instance.state_changed"], "description": "ops"},
    )

    assert response.status_code == 201, response.content
    body = response.json()
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert body["secret"] == secrets.decrypt(endpoint.secret_encrypted)
    assert body["secret_hint"] == endpoint.secret_hint and body["active"] is True
    # It is never shown again.
    assert "secret" not in api.get(f"/webhooks/{endpoint.pk}/").json()
    assert "secret" not in api.get("/webhooks/").json()[0]


def test_create_is_idempotent_with_a_key(team, api_as):
    api = api_as(team.owner)
    data = {"url": URL, "event_types": ["invoice.issued"]}

    first = api.post("/webhooks/", data, headers={"Idempotency-Key": "hook-1"})
    again = api.post("/webhooks/", data, headers={"Idempotency-Key": "hook-1"})
    other = api.post(
        "/webhooks/", {**data, "url": URL + "2"}, headers={"Idempotency-Key": "hook-1"}
    )

    assert first.status_code == 201 and again.content == first.content
    assert WebhookEndpoint.objects.count() == 1
    assert_error(other, 409, "idempotency_key_reused")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"url": "http://hooks.example.com/x", "event_types": ["invoice.issued"]}, "url"),
        ({"url": "https://10.0.0.1/x", "event_types": ["invoice.issued"]}, "url"),
        ({"url": URL, "event_types": []}, "event_types"),
        ({"url": URL, "event_types": ["instance.exploded"]}, "event_types.0"),
        ({"url": URL, "event_types": ["invoice.issued"], "secret": "mine"}, "secret"),
    ],
)
def test_bad_endpoints_are_refused_with_the_field(team, api_as, data, field):
    error = assert_error(api_as(team.owner).post("/webhooks/", data), 400)
    assert field in error["details"], error
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("role", ["member", "billing", "viewer"])
def test_only_owners_and_admins(team, api_as, role):
    api = api_as(team.by_role(role))
    assert_error(api.get("/webhooks/"), 403, "forbidden")
    assert_error(api.post("/webhooks/", {"url": URL, "event_types": ["invoice.issued"]}), 403)


def test_update_pause_roll_and_delete(team, api_as):
    endpoint, old_secret = webhook_endpoint_create(
        membership=team.owner, url=URL, event_types=["invoice.issued"]
    )
    api = api_as(team.admin)

    paused = api.patch(f"/webhooks/{endpoint.pk}/", {"active": False})
    assert paused.status_code == 200 and paused.json()["active"] is False
    assert paused.json()["event_types"] == ["invoice.issued"]  # untouched
    changed = api.patch(
        f"/webhooks/{endpoint.pk}/", {"event_types": ["quota.decided", "invoice.issued"]}
    )
    assert changed.json()["event_types"] == ["quota.decided", "invoice.issued"]
    assert (
        "url" in assert_error(api.patch(f"/webhooks/{endpoint.pk}/", {"url": URL}), 400)["details"]
    )

    rolled = api.post(f"/webhooks/{endpoint.pk}/roll-secret/")
    assert rolled.status_code == 200
    new_secret = rolled.json()["secret"]
    assert new_secret != old_secret
    endpoint.refresh_from_db()
    assert secrets.decrypt(endpoint.secret_encrypted) == new_secret

    assert api.delete(f"/webhooks/{endpoint.pk}/").status_code == 204
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_a_test_event_and_the_delivery_log(
    team, api_as, _no_broker, django_capture_on_commit_callbacks
):
    endpoint, _secret = webhook_endpoint_create(
        membership=team.owner, url=URL, event_types=["invoice.issued"]
    )
    api = api_as(team.owner)

    with django_capture_on_commit_callbacks(execute=True):
        sent = api.post(f"/webhooks/{endpoint.pk}/test/")

    assert sent.status_code == 202, sent.content
    delivery = sent.json()
    assert delivery["event_type"] == "webhook.test" and delivery["state"] == "pending"
    assert delivery["payload"]["data"]["sent_by"] == team.owner.user.email
    assert ("webhook", delivery["id"]) in _no_broker
    # An attempt is recorded by the delivery worker; the log shows it.
    WebhookAttempt.objects.create(
        delivery_id=delivery["id"], number=1, status_code=500, duration_ms=12
    )
    WebhookDelivery.objects.filter(pk=delivery["id"]).update(attempts=1)
    log = api.get(f"/webhooks/{endpoint.pk}/deliveries/").json()
    assert log["count"] == 1
    assert log["results"][0]["attempt_log"] == [
        {
            "number": 1,
            "at": log["results"][0]["attempt_log"][0]["at"],
            "status_code": 500,
            "duration_ms": 12,
            "error": "",
        }
    ]
    assert api.get(f"/webhooks/{endpoint.pk}/deliveries/", {"state": "failed"}).json()["count"] == 0
    # The payload is the exact body that is signed and sent.
    body = WebhookDelivery.objects.get(pk=delivery["id"]).body
    assert json.loads(body) == delivery["payload"]


def test_another_organizations_endpoint_is_404(team, outsider, api_as):
    theirs, _secret = webhook_endpoint_create(
        membership=outsider, url=URL, event_types=["invoice.issued"]
    )
    webhook_send_test(membership=outsider, endpoint=theirs)
    api = api_as(team.owner)

    for path in ("", "deliveries/"):
        assert_error(api.get(f"/webhooks/{theirs.pk}/{path}"), 404)
    assert_error(api.post(f"/webhooks/{theirs.pk}/roll-secret/"), 404)
    assert_error(api.delete(f"/webhooks/{theirs.pk}/"), 404)
    assert WebhookEndpoint.objects.filter(pk=theirs.pk).exists()
