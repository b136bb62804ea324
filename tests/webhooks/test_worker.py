"""A real Celery worker delivers: the receiver fails twice, the worker's retries (real
countdowns through the Redis broker) bring the third attempt, which succeeds."""

import time
from types import SimpleNamespace

import pytest
from django.db import transaction

from portal.lib.webhook_signature import HEADER, verify
from portal.webhooks.models import DeliveryState, WebhookDelivery
from portal.webhooks.services import webhook_emit, webhook_endpoint_create
from tests.instances.worker import CeleryWorker, purge_broker
from tests.webhooks.receiver import Receiver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def worker(tmp_path):
    purge_broker()
    worker = CeleryWorker(
        tmp_path,
        simulator=SimpleNamespace(url="http://127.0.0.1:9", token="unused"),
        extra_env={"DJANGO_SETTINGS_MODULE": "tests.webhooks.worker_settings"},
    )
    worker.start()
    yield worker
    worker.stop()
    purge_broker()


def test_a_real_worker_retries_until_the_receiver_answers(team, worker, local_receivers):
    with Receiver(statuses=[500, 502, 200]) as receiver:
        _endpoint, secret = webhook_endpoint_create(
            membership=team.owner, url=receiver.url, event_types=["quota.decided"]
        )
        with transaction.atomic():  # committed: the worker enqueued on commit sees the row
            [delivery_id] = webhook_emit(
                organization=team.organization, event_type="quota.decided", payload={"n": 1}
            )

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            delivery = WebhookDelivery.objects.get(pk=delivery_id)
            if delivery.state != DeliveryState.PENDING:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"not delivered in time; worker log:\n{worker.log()}")

    assert delivery.state == DeliveryState.SUCCEEDED, worker.log()
    attempts = list(delivery.attempt_log.order_by("number"))
    assert [a.status_code for a in attempts] == [500, 502, 200]
    # Exponential backoff: the pauses grow (0.2 s, then 0.4 s, as the worker counts them).
    gaps = [(b.at - a.at).total_seconds() for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps[0] >= 0.15 and gaps[1] >= 0.35, gaps
    assert len(receiver.requests) == 3
    for request in receiver.requests:
        verify(secret, request.body, request.headers[HEADER])
