"""Endpoints (URL rules, secrets, who may) and webhook_emit (who gets what, and when)."""

import json

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from portal.lib.errors import ApplicationError
from portal.webhooks import secrets
from portal.webhooks.models import WebhookDelivery, WebhookEndpoint
from portal.webhooks.services import (
    webhook_emit,
    webhook_emit_each,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_roll_secret,
    webhook_endpoint_update,
    webhook_url_clean,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _recorded(monkeypatch):
    sent = []
    monkeypatch.setattr("portal.webhooks.tasks.webhook_deliver.delay", sent.append)
    return sent


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hooks",
        "https://hooks.example.com:8443/backfill?source=gpu",
        "https://93.184.216.34/hooks",
    ],
)
def test_good_urls(url):
    assert webhook_url_clean(f"  {url} ") == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "Give the URL"),
        ("example.com/hooks", "full URL"),
        ("ftp://example.com/x", "full URL"),
        ("http://example.com/hooks", "HTTPS only"),
        ("https://user:pass@example.com/", "passwords"),
        ("https://10.1.2.3/hooks", "public addresses"),
        ("https://192.168.0.10/hooks", "public addresses"),
        ("https://169.254.169.254/latest/meta-data", "public addresses"),
        ("https://[::ffff:10.0.0.1]/x", "public addresses"),
        ("https://example.com:99999/", "not a valid URL"),
        ("https://exa mple.com/", "full URL"),
        ("https://example.com/" + "x" * 500, "at most 500"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url, says):
    with pytest.raises(ApplicationError) as raised:
        webhook_url_clean(url)
    assert raised.value.field == "url" and says in raised.value.message


def test_this_machine_is_refused_without_the_allow_list(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    for url in ("http://127.0.0.1:9000/hooks", "https://localhost/hooks", "https://[::1]/"):
        with pytest.raises(ApplicationError):
            webhook_url_clean(url)


def test_create_returns_the_secret_once_and_keeps_it_encrypted(team):
    endpoint, secret = webhook_endpoint_create(
        membership=team.admin,
        url="https://example.com/hooks",
        event_types=["quota.decided", "instance.state_changed", "instance.state_changed"],
        description="  ops   bot ",
    )

    assert secret.startswith("whsec_") and len(secret) > 40
    assert secret not in endpoint.secret_encrypted
    assert secrets.decrypt(endpoint.secret_encrypted) == secret
    assert endpoint.secret_hint == secret[:10] + "…"
    assert endpoint.event_types == ["instance.state_changed", "quota.decided"]
    assert endpoint.description == "ops bot"


def test_the_secret_survives_a_secret_key_rotation(team, settings):
    endpoint, secret = webhook_endpoint_create(
        membership=team.owner, url="https://example.com/h", event_types=["quota.decided"]
    )
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-key-" + "x" * 50

    assert secrets.decrypt(endpoint.secret_encrypted) == secret


@pytest.mark.parametrize("events", [[], ["instance.deleted"], ["webhook.test"]])
def test_event_types_must_be_known(team, events):
    with pytest.raises(ApplicationError) as raised:
        webhook_endpoint_create(membership=team.owner, url="https://e.com/h", event_types=events)
    assert raised.value.field == "event_types"
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("role", ["member", "billing", "viewer"])
def test_only_owners_and_admins_manage_endpoints(team, role):
    with pytest.raises(ApplicationError) as raised:
        webhook_endpoint_create(
            membership=team.by_role(role), url="https://e.com/h", event_types=["quota.decided"]
        )
    assert raised.value.code == "forbidden"


def test_an_organization_has_a_bounded_number_of_endpoints(team, settings):
    settings.WEBHOOK_ENDPOINTS_PER_ORGANIZATION = 2
    for n in range(2):
        webhook_endpoint_create(
            membership=team.owner, url=f"https://e.com/{n}", event_types=["quota.decided"]
        )
    with pytest.raises(ApplicationError) as raised:
        webhook_endpoint_create(
            membership=team.owner, url="https://e.com/3", event_types=["quota.decided"]
        )
    assert raised.value.code == "limit"


def test_update_roll_and_delete_stay_in_the_organization(team, outsider):
    endpoint, secret = webhook_endpoint_create(
        membership=team.owner, url="https://e.com/h", event_types=["quota.decided"]
    )

    for call in (
        lambda: webhook_endpoint_update(
            membership=outsider, endpoint=endpoint, event_types=["quota.decided"], active=False
        ),
        lambda: webhook_endpoint_roll_secret(membership=outsider, endpoint=endpoint),
        lambda: webhook_endpoint_delete(membership=outsider, endpoint=endpoint),
    ):
        with pytest.raises(ApplicationError) as raised:
            call()
        assert raised.value.code == "not_found"

    new = webhook_endpoint_roll_secret(membership=team.admin, endpoint=endpoint)
    endpoint.refresh_from_db()
    assert new != secret and secrets.decrypt(endpoint.secret_encrypted) == new
    webhook_endpoint_update(
        membership=team.admin, endpoint=endpoint, event_types=["invoice.issued"], active=False
    )
    endpoint.refresh_from_db()
    assert endpoint.event_types == ["invoice.issued"] and endpoint.active is False
    webhook_endpoint_delete(membership=team.owner, endpoint=endpoint)
    assert not WebhookEndpoint.objects.exists()


def _endpoint(membership, events, active=True, url="https://e.com/h"):
    endpoint, _ = webhook_endpoint_create(membership=membership, url=url, event_types=events)
    if not active:
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False)
    return endpoint


def test_emit_reaches_the_active_subscribed_endpoints_of_the_organization_only(
    team, outsider, _recorded, django_capture_on_commit_callbacks
):
    a = _endpoint(team.owner, ["instance.state_changed"], url="https://a.example/h")
    b = _endpoint(team.owner, ["instance.state_changed", "quota.decided"], url="https://b.ex/h")
    _endpoint(team.owner, ["quota.decided"])  # not subscribed
    _endpoint(team.owner, ["instance.state_changed"], active=False)  # disabled
    _endpoint(outsider, ["instance.state_changed"])  # another organization

    with django_capture_on_commit_callbacks(execute=True):
        ids = webhook_emit(
            organization=team.organization,
            event_type="instance.state_changed",
            payload={"instance": {"id": 1}},
        )

    deliveries = list(WebhookDelivery.objects.filter(pk__in=ids).order_by("endpoint_id"))
    assert [d.endpoint_id for d in deliveries] == [a.pk, b.pk]
    assert deliveries[0].event_id == deliveries[1].event_id  # one event, two deliveries
    assert deliveries[0].body == deliveries[1].body
    event = json.loads(deliveries[0].body)
    assert event["type"] == "instance.state_changed" and event["organization"] == "acme"
    assert event["data"] == {"instance": {"id": 1}}
    assert sorted(_recorded) == sorted(ids)  # enqueued after the commit


def test_nothing_is_sent_when_the_change_rolls_back(team, _recorded):
    _endpoint(team.owner, ["quota.decided"])

    with pytest.raises(RuntimeError), transaction.atomic():
        webhook_emit(organization=team.organization, event_type="quota.decided", payload={})
        raise RuntimeError("the decision failed")

    assert not WebhookDelivery.objects.exists()
    assert _recorded == []


def test_emit_without_listeners_is_one_query_and_no_savepoint(team, outsider):
    _endpoint(team.owner, ["instance.state_changed"])  # listens, but not to this event
    _endpoint(team.owner, ["quota.decided"], active=False)
    _endpoint(outsider, ["quota.decided"])  # listens, in another organization
    with CaptureQueriesContext(connection) as queries:
        ids = webhook_emit(organization=team.organization, event_type="quota.decided", payload={})

    assert ids == []
    assert [q["sql"].split()[0] for q in queries] == ["SELECT"]
    assert not WebhookDelivery.objects.exists()


def test_emit_to_several_organizations_reaches_only_those_subscribed(team, outsider, _recorded):
    listening = _endpoint(outsider, ["instance.reclaim_risk"])
    _endpoint(team.owner, ["instance.state_changed"])

    ids = webhook_emit_each(
        event_type="instance.reclaim_risk",
        events=[(team.organization, {"n": 1}), (outsider.organization, {"n": 2})],
    )

    (delivery,) = WebhookDelivery.objects.filter(pk__in=ids)
    assert delivery.endpoint_id == listening.pk
    assert json.loads(delivery.body)["data"] == {"n": 2}


def test_emit_refuses_an_unknown_event_type(team):
    with pytest.raises(ValueError):
        webhook_emit(organization=team.organization, event_type="instance.exploded", payload={})


def test_a_webhook_problem_never_breaks_the_callers_change(team, monkeypatch, caplog):
    _endpoint(team.owner, ["quota.decided"])

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(WebhookDelivery.objects, "bulk_create", broken)
    with transaction.atomic():
        assert (
            webhook_emit(organization=team.organization, event_type="quota.decided", payload={})
            == []
        )
        assert WebhookEndpoint.objects.count() == 1  # the caller's transaction still works

    assert "webhook_emit quota.decided" in caplog.text
