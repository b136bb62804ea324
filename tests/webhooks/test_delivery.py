"""Delivering to a real HTTP receiver: signatures, retries with backoff, the attempt log.

The task's retries run deterministically: `webhook_deliver.apply()` executes the task in this
process, and Celery's eager apply runs each `self.retry()` at once, in order (the countdown is
not waited for; WEBHOOK_RETRY_BASE=0 makes it 0 anyway). test_worker.py does the same through
a real worker and broker.
"""

import json
import socket
import threading
import time

import pytest
from django.db import connection

from portal.lib.webhook_signature import HEADER, verify
from portal.webhooks.models import (
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from portal.webhooks.services import (
    backoff,
    webhook_delivery_attempt,
    webhook_emit,
    webhook_send_test,
)
from portal.webhooks.tasks import webhook_deliver
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _recorded(monkeypatch):
    """Deliveries are run by the tests themselves, never sent to a broker."""
    sent = []
    monkeypatch.setattr("portal.webhooks.tasks.webhook_deliver.delay", sent.append)
    return sent


def emit(team, event_type="instance.state_changed", payload=None) -> WebhookDelivery:
    [delivery_id] = webhook_emit(
        organization=team.organization,
        event_type=event_type,
        payload=payload or {"instance": {"id": 7, "name": "train-1"}, "to_state": "running"},
    )
    return WebhookDelivery.objects.get(pk=delivery_id)


def test_the_receiver_gets_a_signed_event_and_the_signature_verifies(team, endpoint_for, no_delay):
    with Receiver() as receiver:
        endpoint, secret = endpoint_for(receiver.url)
        delivery = emit(team)

        assert webhook_deliver.apply(args=(delivery.pk,)).get() is True

    [request] = receiver.requests
    assert request.path == "/hooks"
    assert verify(secret, request.body, request.headers[HEADER]) <= time.time()
    event = json.loads(request.body)
    assert event["id"] == f"evt_{delivery.event_id.hex}"
    assert event["type"] == "instance.state_changed"
    assert event["organization"] == "acme"
    assert event["data"] == {"instance": {"id": 7, "name": "train-1"}, "to_state": "running"}
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Backfill-Event-Id"] == event["id"]
    assert request.headers["Backfill-Event-Type"] == "instance.state_changed"
    assert request.headers["Backfill-Delivery-Attempt"] == "1"
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.SUCCEEDED and delivery.delivered_at is not None
    [attempt] = delivery.attempt_log.all()
    assert attempt.status_code == 200 and attempt.error == "" and attempt.duration_ms >= 0
    assert attempt.response_excerpt == '{"ok": true}'


def test_a_tampered_body_or_another_secret_does_not_verify(team, endpoint_for, no_delay):
    from portal.lib.webhook_signature import SignatureError

    with Receiver() as receiver:
        _endpoint, secret = endpoint_for(receiver.url)
        webhook_deliver.apply(args=(emit(team).pk,))

    [request] = receiver.requests
    with pytest.raises(SignatureError):
        verify(secret, request.body.replace(b"running", b"stopped"), request.headers[HEADER])
    with pytest.raises(SignatureError):
        verify("whsec_not_it", request.body, request.headers[HEADER])


def test_the_receiver_fails_twice_and_the_third_delivery_succeeds(team, endpoint_for, no_delay):
    with Receiver(statuses=[500, 503, 200]) as receiver:
        _endpoint, secret = endpoint_for(receiver.url)
        delivery = emit(team)

        result = webhook_deliver.apply(args=(delivery.pk,))

    assert result.get() is True
    assert len(receiver.requests) == 3
    for number, request in enumerate(receiver.requests, start=1):
        verify(secret, request.body, request.headers[HEADER])  # each attempt signed anew
        assert request.headers["Backfill-Delivery-Attempt"] == str(number)
    assert len({request.body for request in receiver.requests}) == 1  # the same event
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.SUCCEEDED and delivery.attempts == 3
    attempts = list(delivery.attempt_log.order_by("number"))
    assert [a.status_code for a in attempts] == [500, 503, 200]
    assert attempts[0].error == "The endpoint answered 500."
    assert attempts[0].response_excerpt == "not today"
    assert attempts[2].error == ""


def test_retries_wait_longer_each_time(team, endpoint_for, settings):
    settings.WEBHOOK_RETRY_BASE = 30
    settings.WEBHOOK_RETRY_MAX = 3600
    assert [backoff(n) for n in (1, 2, 3, 4, 8, 20)] == [30, 60, 120, 240, 3600, 3600]

    with Receiver(statuses=[500]) as receiver:
        endpoint_for(receiver.url)
        delivery = emit(team)
        result = webhook_delivery_attempt(delivery_id=delivery.pk)

    assert result.retry_in == 30 and result.delivered is False
    delivery.refresh_from_db()
    waited = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
    assert 29 <= waited <= 31
    # Woken early (a duplicate message), it makes no attempt and says when to come back.
    early = webhook_delivery_attempt(delivery_id=delivery.pk)
    assert early.attempt is None and 28 <= early.retry_in <= 30
    assert delivery.attempt_log.count() == 1


def test_it_gives_up_after_the_last_attempt(team, endpoint_for, no_delay):
    no_delay.WEBHOOK_MAX_ATTEMPTS = 4
    with Receiver(statuses=[500]) as receiver:
        endpoint_for(receiver.url)
        delivery = emit(team)

        assert webhook_deliver.apply(args=(delivery.pk,)).get() is False

    assert len(receiver.requests) == 4
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED and delivery.next_attempt_at is None
    assert WebhookAttempt.objects.filter(delivery=delivery).count() == 4


def test_a_refused_connection_is_an_attempt_with_the_error(team, endpoint_for, no_delay):
    no_delay.WEBHOOK_MAX_ATTEMPTS = 2
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: nobody listens there
    endpoint_for(f"http://127.0.0.1:{port}/hooks")
    delivery = emit(team)

    assert webhook_deliver.apply(args=(delivery.pk,)).get() is False

    attempts = list(delivery.attempt_log.all())
    assert len(attempts) == 2
    assert attempts[0].status_code is None and attempts[0].error == "connection failed"


def test_redirects_are_not_followed(team, endpoint_for, no_delay):
    no_delay.WEBHOOK_MAX_ATTEMPTS = 1
    with Receiver(statuses=[302], headers={"Location": "http://127.0.0.1:1/elsewhere"}) as receiver:
        endpoint_for(receiver.url)
        delivery = emit(team)
        webhook_deliver.apply(args=(delivery.pk,))

    [attempt] = delivery.attempt_log.all()
    assert attempt.status_code == 302 and "Redirects are not followed" in attempt.error
    assert len(receiver.requests) == 1


def test_a_name_that_resolves_to_a_private_address_is_refused(team, endpoint_for, monkeypatch):
    endpoint_for("https://hooks.example.com/backfill")
    delivery = emit(team)
    monkeypatch.setattr(
        "portal.lib.safehttp.socket.getaddrinfo",
        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 443))],
    )

    assert webhook_deliver.apply(args=(delivery.pk,)).get() is False

    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED and delivery.attempts == 1
    error = delivery.attempt_log.get().error
    assert error == "refused: the host is not a public internet address"
    assert "10.0.0.5" not in error  # no map of the inside for the customer


def test_a_disabled_endpoint_is_not_called(team, endpoint_for, no_delay):
    with Receiver() as receiver:
        endpoint, _ = endpoint_for(receiver.url)
        delivery = emit(team)
        endpoint.active = False
        endpoint.save()

        webhook_deliver.apply(args=(delivery.pk,))

    assert receiver.requests == []
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED


def test_running_the_task_again_sends_nothing_more(team, endpoint_for, no_delay):
    with Receiver() as receiver:
        endpoint_for(receiver.url)
        delivery = emit(team)
        webhook_deliver.apply(args=(delivery.pk,))
        webhook_deliver.apply(args=(delivery.pk,))  # a redelivered message (acks_late)

    assert len(receiver.requests) == 1
    assert delivery.attempt_log.count() == 1


@pytest.mark.django_db(transaction=True)
def test_while_one_worker_is_sending_another_leaves_the_delivery_alone(
    team, endpoint_for, no_delay
):
    """Two workers on one delivery (a redelivered message while the first still runs); the
    first works in a thread with its own database connection."""
    release = threading.Event()
    with Receiver() as receiver:
        endpoint_for(receiver.url)
        delivery = emit(team)
        original_answer = receiver._answer

        def slow_answer():
            release.wait(10)  # the first request is held here
            return original_answer()

        receiver._answer = slow_answer
        first = {}

        def work():
            try:
                first["r"] = webhook_delivery_attempt(delivery_id=delivery.pk)
            finally:
                connection.close()

        worker = threading.Thread(target=work)
        worker.start()
        deadline = time.monotonic() + 10
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.02)

        second = webhook_delivery_attempt(delivery_id=delivery.pk)

        release.set()
        worker.join(10)

    assert second.attempt is None and second.retry_in >= 1  # leased: come back later
    assert first["r"].delivered is True
    assert len(receiver.requests) == 1
    assert delivery.attempt_log.count() == 1
    # After the first worker recorded its answer, the second one's look finds it done.
    assert webhook_delivery_attempt(delivery_id=delivery.pk).retry_in is None


def test_a_deleted_endpoint_ends_its_retries(team, endpoint_for, no_delay):
    endpoint, _ = endpoint_for("http://127.0.0.1:9/hooks")
    delivery = emit(team)
    endpoint.delete()

    assert webhook_deliver.apply(args=(delivery.pk,)).get() is False


def test_the_test_button_sends_a_sample_to_one_endpoint(team, endpoint_for, no_delay):
    with Receiver() as receiver:
        endpoint, secret = endpoint_for(receiver.url, events=["invoice.issued"])
        delivery = webhook_send_test(membership=team.owner, endpoint=endpoint)
        webhook_deliver.apply(args=(delivery.pk,))

    [request] = receiver.requests
    verify(secret, request.body, request.headers[HEADER])
    assert json.loads(request.body)["type"] == "webhook.test"


def test_deliveries_and_failures_are_counted_for_prometheus(team, endpoint_for, no_delay):
    from tests.runtime.scraping import counted

    no_delay.WEBHOOK_MAX_ATTEMPTS = 3
    before = (
        counted("backfill_webhook_deliveries_total"),
        counted("backfill_webhook_failures_total", final="false"),
        counted("backfill_webhook_failures_total", final="true"),
    )
    with Receiver(statuses=[500, 200]) as receiver:
        endpoint_for(receiver.url)
        webhook_deliver.apply(args=(emit(team).pk,))
    WebhookEndpoint.objects.update(active=False)  # the next event goes to another receiver
    with Receiver(statuses=[500]) as receiver:
        endpoint_for(receiver.url)
        webhook_deliver.apply(args=(emit(team).pk,))

    after = (
        counted("backfill_webhook_deliveries_total"),
        counted("backfill_webhook_failures_total", final="false"),
        counted("backfill_webhook_failures_total", final="true"),
    )
    # 500 then 200; then 500, 500 and a last 500 given up.
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 3, 1]
