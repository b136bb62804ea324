"""Webhook pages: list and add (secret shown once), the endpoint with its delivery log, the test
button, settings, secret roll, delete. Owners and admins; 403 for other members, 404 outside."""

import re

import pytest

from portal.webhooks import secrets
from portal.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from portal.webhooks.services import webhook_endpoint_create

pytestmark = pytest.mark.django_db
LIST = "/o/acme/webhooks/"


@pytest.fixture(autouse=True)
def _recorded(monkeypatch):
    sent = []
    monkeypatch.setattr("portal.webhooks.tasks.webhook_deliver.delay", sent.append)
    return sent


@pytest.fixture
def endpoint(team):
    endpoint, _ = webhook_endpoint_create(
        membership=team.owner, url="https://hooks.example.com/b", event_types=["quota.decided"]
    )
    return endpoint


def urls(endpoint) -> dict[str, str]:
    base = f"{LIST}{endpoint.pk}/"
    return {
        "detail": base,
        "edit": f"{base}edit/",
        "test": f"{base}test/",
        "roll": f"{base}roll-secret/",
        "delete": f"{base}delete/",
    }


def test_adding_an_endpoint_shows_its_secret_once(
    team, client_for, django_capture_on_commit_callbacks
):
    client = client_for(team.admin.user)

    response = client.post(
        LIST,
        {
            "url": "https://hooks.example.com/backfill",
            "description": "ops",
            "event_types": ["instance.state_changed", "budget.threshold"],
        },
    )

    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    secret = re.search(r'<code id="secret-value">(whsec_[^<]+)</code>', page).group(1)
    endpoint = WebhookEndpoint.objects.get()
    assert secrets.decrypt(endpoint.secret_encrypted) == secret
    assert endpoint.event_types == ["instance.state_changed", "budget.threshold"]
    assert secret not in client.get(urls(endpoint)["detail"]).content.decode()
    assert secret not in client.get(LIST).content.decode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"url": "http://example.com/x", "event_types": ["quota.decided"]}, "HTTPS only"),
        ({"url": "https://10.0.0.1/x", "event_types": ["quota.decided"]}, "public addresses"),
        ({"url": "https://e.com/x"}, "Choose at least one event."),
        ({"url": "", "event_types": ["quota.decided"]}, "Give the URL"),
    ],
)
def test_a_bad_endpoint_is_refused_on_the_form(team, client_for, data, message):
    response = client_for(team.owner.user).post(LIST, data)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_the_list_counts_deliveries(team, client_for, endpoint):
    for state in ("succeeded", "succeeded", "failed", "pending"):
        WebhookDelivery.objects.create(
            endpoint=endpoint, event_type="quota.decided", body="{}", state=state
        )

    page = client_for(team.owner.user).get(LIST).content.decode()

    assert "hooks.example.com/b" in page
    assert "2 ok" in page and "1 failed" in page and "1 pending" in page


def test_the_endpoint_page_lists_each_attempt(team, client_for, endpoint):
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event_type="quota.decided", body="{}", state="succeeded", attempts=3
    )
    for number, status, error in [
        (1, None, "ConnectionError: refused"),
        (2, 500, "The endpoint answered 500."),
        (3, 200, ""),
    ]:
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            status_code=status,
            duration_ms=40 + number,
            error=error,
        )

    page = client_for(team.admin.user).get(urls(endpoint)["detail"]).content.decode()

    assert page.count('data-testid="attempt"') == 3
    assert "no answer" in page and "ConnectionError: refused" in page
    assert ">500<" in page and ">200<" in page and "43 ms" in page
    assert f"evt_{delivery.event_id.hex}" in page
    assert "Backfill-Signature" in page  # how to check it


def test_the_log_polls_only_while_a_delivery_is_pending(team, client_for, endpoint):
    client = client_for(team.owner.user)
    assert 'hx-trigger="every 2s"' not in client.get(urls(endpoint)["detail"]).content.decode()

    WebhookDelivery.objects.create(endpoint=endpoint, event_type="quota.decided", body="{}")
    page = client.get(urls(endpoint)["detail"]).content.decode()
    region = client.get(urls(endpoint)["detail"], headers={"HX-Request": "true"})

    assert 'hx-trigger="every 2s"' in page
    assert (
        region.content.decode().lstrip().startswith('<section class="card flush" id="deliveries"')
    )


def test_the_test_button_queues_a_sample_event(
    team, client_for, endpoint, _recorded, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(team.owner.user).post(urls(endpoint)["test"])

    assert response.status_code == 302
    delivery = WebhookDelivery.objects.get()
    assert delivery.event_type == "webhook.test" and _recorded == [delivery.pk]


def test_settings_roll_and_delete(team, client_for, endpoint):
    client = client_for(team.owner.user)
    old_secret = secrets.decrypt(endpoint.secret_encrypted)

    response = client.post(
        urls(endpoint)["edit"], {"event_types": ["invoice.issued"], "description": "x"}
    )
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.event_types == ["invoice.issued"] and endpoint.active is False

    assert client.post(urls(endpoint)["edit"], {"event_types": []}).status_code == 400

    rolled = client.post(urls(endpoint)["roll"])
    new = re.search(r'<code id="secret-value">(whsec_[^<]+)</code>', rolled.content.decode())
    assert new and new.group(1) != old_secret

    assert "Delete this endpoint?" in client.get(urls(endpoint)["delete"]).content.decode()
    assert client.post(urls(endpoint)["delete"]).status_code == 302
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("role", ["member", "billing", "viewer"])
def test_other_members_get_403(team, client_for, endpoint, role):
    client = client_for(team.by_role(role).user)

    assert client.get(LIST).status_code == 403
    for name, url in urls(endpoint).items():
        response = client.get(url) if name in ("detail", "delete") else client.post(url)
        assert response.status_code == 403, name
    assert WebhookEndpoint.objects.count() == 1


def test_outsiders_and_other_organizations_endpoints_are_404(team, outsider, client_for, endpoint):
    outsider_client = client_for(outsider.user)
    assert outsider_client.get(LIST).status_code == 404
    theirs, _ = webhook_endpoint_create(
        membership=outsider, url="https://rival.example/h", event_types=["quota.decided"]
    )

    client = client_for(team.owner.user)
    for name, url in urls(theirs).items():
        response = client.get(url) if name in ("detail", "delete") else client.post(url)
        assert response.status_code == 404, name
    assert WebhookEndpoint.objects.filter(pk=theirs.pk, active=True).exists()


def test_wrong_methods_are_405(team, client_for, endpoint):
    client = client_for(team.owner.user)

    assert client.get(urls(endpoint)["test"]).status_code == 405
    assert client.get(urls(endpoint)["roll"]).status_code == 405
    assert client.put(LIST).status_code == 405


def test_the_tab_shows_for_owners_and_admins_only(team, client_for):
    assert (
        'href="/o/acme/webhooks/"'
        in client_for(team.admin.user).get("/o/acme/api/").content.decode()
    )
    assert (
        'href="/o/acme/webhooks/"'
        not in client_for(team.member.user).get("/o/acme/api/").content.decode()
    )


def test_a_retry_that_is_due_says_so_not_in_0_minutes(team, client_for, endpoint):
    from datetime import timedelta

    from django.utils import timezone

    WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_type="quota.decided",
        body="{}",
        next_attempt_at=timezone.now() - timedelta(seconds=5),
    )
    page = client_for(team.owner.user).get(urls(endpoint)["detail"]).content.decode()
    assert "next try any moment now" in page
    assert "0 minutes" not in page
