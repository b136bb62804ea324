"""/healthz: what a load balancer and an operator see about the portal's dependencies."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from portal.celery import app

pytestmark = pytest.mark.django_db


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
    command = [str(celery), "-A", "portal", "worker", "--pool=solo", "--concurrency=1"]
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        worker = subprocess.Popen(
            [*command, "-Q", "backfill", "--loglevel=WARNING"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not app.control.ping(timeout=0.5):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"The worker did not answer:\n{log.read_text()}")
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def test_the_report_has_database_redis_and_celery_entries(client):
    report = client.get("/healthz").json()

    assert set(report["checks"]) == {"database", "redis", "celery"}
    assert report["checks"]["database"] == {"ok": True, "detail": "postgresql"}
    assert report["checks"]["redis"] == {"ok": True, "detail": "pong"}


def test_without_a_celery_worker_the_portal_is_unhealthy(client):
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert response.json()["checks"]["celery"] == {"ok": False, "detail": "no worker answered"}


def test_an_unreachable_broker_is_reported(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["ok"] is False
    assert response.json()["checks"]["celery"] == {"ok": False, "detail": "broker unreachable"}


@pytest.mark.slow
def test_with_a_running_worker_everything_is_ok(client, celery_worker):
    response = client.get("/healthz")

    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "ok"
    assert all(check["ok"] for check in report["checks"].values())
    assert report["checks"]["celery"]["detail"] == "1 worker(s)"


def test_the_answer_is_never_cached(client):
    assert "no-cache" in client.get("/healthz")["Cache-Control"]
