"""Production settings in real processes: what refuses to start, and gunicorn as deployed
(gunicorn.conf.py): static files by whitenoise, proxy headers only from trusted proxies,
JSON access lines with the request id."""

from __future__ import annotations

import gzip
import http.client
import json
import shutil
import subprocess
import sys

import pytest
import requests

from portal.settings.required import REQUIRED
from tests.runtime.conftest import production_env
from tests.runtime.servers import (
    REPO,
    VENV_BIN,
    PostgresServer,
    RedisServer,
    free_port,
    json_lines,
    scratch_dir,
    stop_group,
    wait_until,
)


@pytest.mark.parametrize("missing", list(REQUIRED))
def test_manage_py_refuses_to_start_with_one_line_naming_the_missing_variable(missing):
    env = production_env()
    del env[missing]

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True, text=True
    )

    assert result.returncode == 78
    assert result.stderr.splitlines() == [
        f"Backfill refuses to start: {missing} is not set ({REQUIRED[missing]})"
    ]


def test_a_weak_secret_key_is_refused():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO,
        env=production_env(DJANGO_SECRET_KEY="dev-" + "x" * 60),
        capture_output=True,
        text=True,
    )

    assert result.returncode == 78
    assert result.stderr.strip() == (
        "Backfill refuses to start: DJANGO_SECRET_KEY must be 50 or more random characters"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        [str(VENV_BIN / "gunicorn")],
        [str(VENV_BIN / "celery"), "-A", "portal", "worker"],
        [str(VENV_BIN / "celery"), "-A", "portal", "beat"],
    ],
    ids=["gunicorn", "worker", "beat"],
)
def test_every_process_refuses_to_start_without_the_database_url(command):
    env = production_env()
    del env["DATABASE_URL"]

    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 78
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert lines == [
        "Backfill refuses to start: DATABASE_URL is not set "
        "(postgres://USER:PASSWORD@HOST:5432/NAME)"
    ]


@pytest.fixture(scope="module")
def gunicorn_production(collected_static, migrated_postgres):
    """gunicorn with production settings against a PostgreSQL and Redis of the test's own;
    127.0.0.2 is the trusted proxy, the test connects from 127.0.0.1 (untrusted) too."""
    postgres = PostgresServer().start(template=migrated_postgres)
    postgres.sql("ALTER USER postgres PASSWORD 'pg-secret-for-test'")
    redis_server = RedisServer().start()
    port = free_port()
    work = scratch_dir("backfill-gunicorn-")
    env = production_env(
        DATABASE_URL=f"postgres://postgres:pg-secret-for-test@127.0.0.1:{postgres.port}/backfill",
        REDIS_URL=redis_server.url(),
        DJANGO_ALLOWED_HOSTS="127.0.0.1,backfill.test",
        BACKFILL_VAR_DIR=str(collected_static),
        TRUSTED_PROXIES="127.0.0.2",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="1",
        WEB_THREADS="2",
        PROMETHEUS_MULTIPROC_DIR=str(work / "metrics"),
    )
    log = work / "web.log"
    process = subprocess.Popen(  # noqa: S603 - our own program
        [str(VENV_BIN / "gunicorn")],
        cwd=REPO,
        env={**env, "BACKFILL_PROCESS": "web"},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: _answers(f"{base}/healthz"), 60, "gunicorn", detail=lambda: log.read_text()
        )
        yield base, log
    finally:
        stop_group(process)
        redis_server.stop()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _from(source: str, base: str, path: str, **headers: str) -> tuple[int, dict, bytes]:
    """GET from the address `source`: 127.0.0.1 (a client) or 127.0.0.2 (the trusted proxy)."""
    host, port = base.split("//")[1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.mark.slow
def test_whitenoise_serves_hashed_static_files_for_a_year(gunicorn_production, collected_static):
    base, _log = gunicorn_production
    manifest = json.loads((collected_static / "staticfiles" / "staticfiles.json").read_text())
    hashed = manifest["paths"]["css/backfill.css"]

    status, headers, body = _from(
        "127.0.0.2",  # through the proxy, which terminates TLS
        base,
        f"/static/{hashed}",
        **{"X-Forwarded-Proto": "https", "Accept-Encoding": "gzip"},
    )

    assert status == 200
    assert "immutable" in headers["Cache-Control"]
    assert headers.get("Content-Encoding") == "gzip"
    assert b"body" in gzip.decompress(body)


@pytest.mark.slow
def test_proxy_headers_count_only_from_the_trusted_proxy(gunicorn_production):
    base, log = gunicorn_production
    forged = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}

    client_status, client_headers, _ = _from(
        "127.0.0.1", base, "/dashboard/", **forged, **{"X-Request-ID": "forged-request-id-1"}
    )
    proxy_status, proxy_headers, _ = _from(
        "127.0.0.2", base, "/dashboard/", **forged, **{"X-Request-ID": "proxy-request-id-1"}
    )

    # The client's "https" is ignored (the page sends it to https); the proxy's is believed.
    assert client_status == 301 and client_headers["Location"].startswith("https://")
    assert proxy_status == 302 and "/accounts/login/" in proxy_headers["Location"]
    assert client_headers["X-Request-ID"] != "forged-request-id-1"
    assert proxy_headers["X-Request-ID"] == "proxy-request-id-1"
    lines = {}
    wait_until(
        lambda: (
            lines.update(
                {line.get("request_id"): line for line in json_lines(log) if "remote" in line}
            )
            or {"proxy-request-id-1", client_headers["X-Request-ID"]} <= set(lines)
        ),
        5,
        "the access lines",
    )
    assert lines["proxy-request-id-1"]["remote"] == "203.0.113.9"  # the proxy's client
    assert lines[client_headers["X-Request-ID"]]["remote"] == "127.0.0.1"  # not the forged one
    assert lines["proxy-request-id-1"]["event"] == "GET /dashboard/ 302"
    assert lines["proxy-request-id-1"]["process"] == "web"


@pytest.mark.slow
def test_every_line_gunicorn_writes_is_json(gunicorn_production):
    base, log = gunicorn_production
    requests.get(f"{base}/healthz", timeout=5)

    lines = [line for line in log.read_text().splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # raises on a line that is not JSON

    assert any(line["logger"] == "gunicorn.error" for line in parsed)  # the master's own
    assert any(line["logger"] == "gunicorn.access" for line in parsed)
