"""/metrics: who may read it, and what an operator reads there."""

import pytest
import redis
from django.core import mail
from django.core.mail import EmailMessage
from django.test import override_settings

from portal.lib import metrics
from portal.notifications.registry import kinds
from portal.notifications.services import notify
from tests.runtime.scraping import TOKEN, counted, sample, scraper

pytestmark = pytest.mark.django_db


@pytest.fixture
def scrape(client, settings):
    return scraper(client, settings)


def test_without_the_token_there_is_no_data(client, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []

    missing = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer guess")

    assert missing.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert wrong.status_code == 403
    for response in (missing, wrong):
        assert b"backfill_" not in response.content and b"django_" not in response.content


def test_unconfigured_metrics_are_off(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = []

    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_an_allowed_address_needs_no_token(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ["10.1.0.0/16", "::1"]

    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1").status_code == 403


def test_reconciliation_drift_found_and_repaired():
    before_found = counted("backfill_reconciliation_drift_found_total", kind="lost")
    before_repaired = counted("backfill_reconciliation_drift_repaired_total", kind="lost")
    before_errors = counted("backfill_reconciliation_drift_found_total", kind="errors")

    metrics.count_reconciliation({"machines": 40, "lost": 2, "adopted": 0, "errors": 1})

    assert counted("backfill_reconciliation_drift_found_total", kind="lost") == before_found + 2
    assert (
        counted("backfill_reconciliation_drift_repaired_total", kind="lost") == before_repaired + 2
    )
    assert counted("backfill_reconciliation_drift_found_total", kind="errors") == before_errors + 1
    assert counted("backfill_reconciliation_drift_repaired_total", kind="errors") == 0


def test_emails_put_in_the_outbox_are_counted_once_committed(
    scrape, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr("portal.notifications.services._enqueue", lambda pk: None)
    kind = kinds()[0]
    before = counted("backfill_emails_queued_total", kind=kind)

    with django_capture_on_commit_callbacks(execute=True):
        notify(kind, never_built=1)  # not sent in this test: only put in the outbox

    assert counted("backfill_emails_queued_total", kind=kind) == before + 1
    assert sample(scrape(), "backfill_emails_outbox", state="waiting") == 1


@override_settings(
    EMAIL_BACKEND="portal.notifications.backends.MeteredEmailBackend",
    EMAIL_DELIVERY_BACKEND="django.core.mail.backends.locmem.EmailBackend",
)
def test_emails_the_server_accepts_are_counted():
    before = counted("backfill_emails_sent_total")

    EmailMessage("Hello", "Body", to=["a@example.com"]).send()
    EmailMessage("Hello", "Body", to=["b@example.com"]).send()

    assert counted("backfill_emails_sent_total") == before + 2
    assert len(mail.outbox) == 2  # and delivered by the real backend


@override_settings(
    EMAIL_BACKEND="portal.notifications.backends.MeteredEmailBackend",
    EMAIL_DELIVERY_BACKEND="django.core.mail.backends.smtp.EmailBackend",
    EMAIL_HOST="127.0.0.1",
    EMAIL_PORT=1,  # nothing listens
)
def test_emails_the_server_refuses_are_counted_as_failed():
    before = counted("backfill_emails_failed_total")

    with pytest.raises(OSError):
        EmailMessage("Hello", "Body", to=["a@example.com"]).send()

    assert counted("backfill_emails_failed_total") == before + 1


def test_queue_depth_per_queue(scrape, settings):
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("backfill")
    broker.rpush("backfill", "m1", "m2", "m3")
    try:
        text = scrape()
    finally:
        broker.delete("backfill")

    assert sample(text, "backfill_celery_queue_depth", queue="backfill") == 3


def test_django_request_and_database_metrics_are_there(scrape, client):
    client.get("/healthz")

    text = scrape()

    assert "django_http_requests_total_by_view_transport_method_total" in text
    assert "django_db_execute_total" in text
