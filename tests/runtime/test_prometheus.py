"""A real Prometheus (Debian's `prometheus` package) scrapes /metrics with the token and
answers a query for one of Backfill's metrics through its HTTP API; a scrape with a wrong token
is refused."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import redis
import requests
from django.conf import settings as django_settings

from tests.runtime.servers import free_port, scratch_dir, stop_group, wait_until

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
TOKEN = "prometheus-scrape-token-0123456789"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def prometheus(live_server, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []
    target = live_server.url.split("//")[1]
    work = scratch_dir("backfill-prometheus-")
    port = free_port()
    (work / "prometheus.yml").write_text(
        f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: backfill
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials: {TOKEN}
    static_configs:
      - targets: ["{target}"]
  - job_name: backfill-wrong-token
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials: not-the-token
    static_configs:
      - targets: ["{target}"]
"""
    )
    process = subprocess.Popen(  # noqa: S603 - fixed arguments
        [
            PROMETHEUS,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=(work / "prometheus.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        wait_until(
            lambda: _ok(f"http://127.0.0.1:{port}/-/ready"),
            30,
            "prometheus",
            detail=lambda: (work / "prometheus.log").read_text(),
        )
        yield api
    finally:
        stop_group(process)
        shutil.rmtree(work, ignore_errors=True)


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


def query(api: str, expression: str) -> list[dict]:
    body = requests.get(f"{api}/query", params={"query": expression}, timeout=5).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_prometheus_scrapes_backfill_and_answers_a_query(prometheus):
    broker = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    broker.delete("backfill")
    broker.rpush("backfill", "a", "b", "c", "d")
    try:
        found: list[dict] = []

        def scraped() -> bool:
            found[:] = query(prometheus, 'backfill_celery_queue_depth{queue="backfill"}')
            return bool(found) and found[0]["value"][1] == "4"

        wait_until(scraped, 30, "Prometheus to scrape the queue depth", interval=0.5)
    finally:
        broker.delete("backfill")

    assert found[0]["metric"]["job"] == "backfill"
    up: dict[str, str] = {}

    def both_scraped() -> bool:  # each job keeps its own first-scrape offset
        up.update({r["metric"]["job"]: r["value"][1] for r in query(prometheus, "up")})
        return {"backfill", "backfill-wrong-token"} <= set(up)

    wait_until(both_scraped, 30, "Prometheus to scrape both jobs", interval=0.5)
    assert up["backfill"] == "1"
    assert up["backfill-wrong-token"] == "0"  # refused: 403, no data
    targets = requests.get(f"{prometheus}/targets", timeout=5).json()["data"]["activeTargets"]
    refused = next(t for t in targets if t["labels"]["job"] == "backfill-wrong-token")
    assert "403" in refused["lastError"]
