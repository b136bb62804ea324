"""/healthz (liveness) and /readyz (readiness): what a load balancer and an operator see."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from portal.lib.heartbeat import HEARTBEAT_KEY, beat
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker():
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    for key in client.scan_iter(match=HEARTBEAT_KEY + "*"):
        client.delete(key)
    yield client
    for key in client.scan_iter(match=HEARTBEAT_KEY + "*"):
        client.delete(key)


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_staff=True))
    return client


def test_liveness_is_ok_while_dependencies_are_down(client, settings, broker):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_without_a_worker_the_portal_is_not_ready_and_strangers_see_only_that(client, broker):
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}


def test_staff_see_which_check_failed(staff_client, broker):
    report = staff_client.get("/readyz").json()

    assert report["status"] == "unavailable"
    assert report["checks"]["database"] == {"ok": True, "detail": "postgresql"}
    assert report["checks"]["redis"] == {"ok": True, "detail": "pong"}
    assert report["checks"]["celery"] == {
        "ok": False,
        "detail": "no worker seen in the last 60 s",
    }


def test_a_recent_worker_heartbeat_makes_the_portal_ready(client, staff_client, broker):
    beat(broker, "worker-1@host-a")

    response = staff_client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert response.json()["checks"]["celery"]["detail"] == "1 worker(s) seen in the last 60 s"


def test_a_stale_heartbeat_does_not_count(staff_client, broker):
    beat(broker, "worker-1@host-a", now=time.time() - 90)

    assert staff_client.get("/readyz").status_code == 503


def test_monitoring_token_and_allowed_addresses_see_the_details(client, settings, broker):
    settings.METRICS_TOKEN = "monitoring-token-0123456789"
    settings.METRICS_ALLOWED_IPS = ["10.9.0.0/16"]

    with_token = client.get(
        "/readyz", HTTP_AUTHORIZATION="Bearer monitoring-token-0123456789"
    ).json()
    from_allowed = client.get("/readyz", REMOTE_ADDR="10.9.3.4").json()
    wrong_token = client.get("/readyz", HTTP_AUTHORIZATION="Bearer nope").json()
    elsewhere = client.get("/readyz", REMOTE_ADDR="10.10.0.1").json()

    assert "checks" in with_token
    assert "checks" in from_allowed
    assert wrong_token == {"status": "unavailable"}
    assert elsewhere == {"status": "unavailable"}


def test_an_unreachable_broker_is_reported(staff_client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"

    response = staff_client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["ok"] is False
    assert response.json()["checks"]["celery"] == {"ok": False, "detail": "broker unreachable"}


@pytest.fixture
def celery_worker(tmp_path):
    """A real Celery worker on the test broker, stopped when the test ends."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.test",
        "TEST_REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.REDIS_URL,
    }
    celery = Path(sys.executable).with_name("celery")
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        worker = subprocess.Popen(
            [str(celery), "-A", "portal", "worker", "--concurrency=1", "-Q", "readyz-test"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


@pytest.mark.slow
def test_a_running_worker_makes_the_portal_ready(staff_client, broker, celery_worker):
    deadline = time.monotonic() + 30
    while staff_client.get("/readyz").status_code != 200:
        assert celery_worker.poll() is None, "the worker exited"
        assert time.monotonic() < deadline, staff_client.get("/readyz").json()
        time.sleep(0.5)

    report = staff_client.get("/readyz").json()
    assert all(check["ok"] for check in report["checks"].values())
