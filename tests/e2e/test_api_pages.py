"""Browser: the API page (a token created and shown once, copied, revoked), the webhooks page
(an endpoint on a real local receiver, a test event whose attempt appears without a reload),
and the API reference (Swagger UI from our static files, no CSP violation)."""

import os
import threading
from pathlib import Path

import pytest
from django.db import connection
from playwright.sync_api import expect

from portal.api.models import ApiToken
from portal.webhooks.tasks import webhook_deliver
from tests.instances import conftest as instance_fixtures
from tests.webhooks.receiver import Receiver

catalog = instance_fixtures.catalog
ssh_key = instance_fixtures.ssh_key

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SHOTS = Path(os.environ.get("BACKFILL_SCREENSHOTS", "/tmp/backfill-screenshots"))


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def deliver_in_process(monkeypatch, settings):
    """Deliveries run in a thread of the test process (no broker), as a worker would, with
    retries a fifth of a second apart."""
    settings.WEBHOOK_RETRY_BASE = 0.2

    def deliver(delivery_id):
        try:
            webhook_deliver.apply(args=(delivery_id,))
        finally:
            connection.close()

    def start(delivery_id):
        threading.Thread(target=deliver, args=(delivery_id,), daemon=True).start()

    monkeypatch.setattr("portal.webhooks.tasks.webhook_deliver.delay", start)


def test_create_copy_and_revoke_a_token(page, live_server, login, team, catalog, ssh_key):
    login(page, team.owner.user)
    page.goto(f"{live_server.url}/o/acme/api/")
    expect(page.get_by_role("heading", name="API", exact=True)).to_be_visible()
    expect(page.get_by_test_id("tokens-empty")).to_be_visible()
    shot(page, "api-empty")

    page.fill("input[name=name]", "CI pipeline")
    page.check("input[name=access][value=read_write]")
    page.select_option("select[name=expires]", "90")
    page.click("text=Create token")

    banner = page.get_by_test_id("new-token")
    expect(banner).to_contain_text("Copy it now: it is not shown again.")
    value = page.locator("#new-token-value").inner_text()
    assert value.startswith("bf_")
    banner.get_by_role("button", name="Copy").click()
    expect(banner.get_by_role("button", name="Copied")).to_be_visible()
    expect(page.get_by_test_id("tokens")).to_contain_text("CI pipeline")
    shot(page, "api-token-created")

    page.goto(f"{live_server.url}/o/acme/api/")
    assert value not in page.content()
    page.get_by_role("link", name="Revoke CI pipeline").click()
    expect(page.get_by_role("heading", name="Revoke “CI pipeline”?")).to_be_visible()
    shot(page, "api-token-revoke")
    page.get_by_role("button", name="Revoke token").click()
    expect(page.get_by_test_id("tokens")).to_contain_text("revoked")
    assert ApiToken.objects.get().revoked_at is not None
    shot(page, "api-token-revoked")


def test_a_token_of_chosen_scopes_and_addresses(page, live_server, login, team):
    login(page, team.admin.user)
    page.goto(f"{live_server.url}/o/acme/api/")
    grid = page.get_by_test_id("scope-grid")
    expect(grid.get_by_label("audit:write")).to_have_count(0)  # the audit log is read-only

    page.fill("input[name=name]", "Billing export")
    page.check("input[name=access][value=custom]")
    grid.get_by_label("billing:read").check()
    grid.get_by_label("instances:write").check()
    page.fill("textarea[name=allowed_ips]", "203.0.113.0/24")
    page.click("text=Create token")

    expect(page.get_by_test_id("new-token")).to_be_visible()
    scopes = page.get_by_test_id("token-scopes").first
    expect(scopes).to_contain_text("write instances")
    expect(scopes).to_contain_text("read billing")
    expect(scopes).to_contain_text("only from 203.0.113.0/24")
    token = ApiToken.objects.get(name="Billing export")
    assert token.scopes == ["instances:write", "billing:read"]
    assert token.allowed_ips == ["203.0.113.0/24"]


def test_add_an_endpoint_and_watch_a_test_event_arrive(
    page, live_server, login, team, deliver_in_process, settings
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the local receiver, explicitly
    login(page, team.admin.user)
    with Receiver(statuses=[503, 200]) as receiver:
        page.goto(f"{live_server.url}/o/acme/webhooks/")
        shot(page, "webhooks-empty")
        page.fill("input[name=url]", receiver.url)
        page.fill("input[name=description]", "Ops chat bot")
        page.check("input[value='instance.interruption_notice']")
        page.click("text=Add endpoint")

        expect(page.get_by_test_id("endpoint-secret")).to_contain_text("not shown again")
        secret = page.locator("#secret-value").inner_text()
        assert secret.startswith("whsec_")
        shot(page, "webhook-created")

        page.get_by_test_id("send-test").click()
        # The first attempt gets a 503; the retry (no wait in tests) a 200. The log updates
        # itself while the delivery is pending.
        attempts = page.get_by_test_id("attempt")
        expect(page.get_by_test_id("deliveries")).to_contain_text("delivered", timeout=15_000)
        expect(attempts).to_have_count(2)
        expect(attempts.nth(0)).to_contain_text("503")
        expect(attempts.nth(1)).to_contain_text("200")
        shot(page, "webhook-deliveries")

        page.goto(f"{live_server.url}/o/acme/webhooks/")
        expect(page.get_by_test_id("endpoints")).to_contain_text("1 ok")
        shot(page, "webhooks-list")
    assert len(receiver.requests) == 2


def test_the_reference_renders_under_our_csp(page, live_server, db):
    violations = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text)
            if "Content Security Policy" in message.text or "Refused" in message.text
            else None
        ),
    )

    page.goto(f"{live_server.url}/api/v1/docs/")

    expect(page.locator(".swagger-ui .title")).to_contain_text("Backfill API", timeout=15_000)
    expect(page.locator(".opblock-tag-section").first).to_be_visible()
    assert violations == []
    shot(page, "api-reference")
