"""Errors go to Sentry when SENTRY_DSN is set, with no secret in them (the logs' scrubbing)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import brotli
import pytest

from tests.runtime.conftest import production_env
from tests.runtime.servers import REPO

API_TOKEN = "bf_0123abcd_" + "S" * 43


@pytest.fixture
def sentry_server():
    """A stand-in for Sentry's ingestion endpoint: keeps every envelope it receives."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            elif encoding == "br":
                body = brotli.decompress(body)
            received.append(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], received
    server.shutdown()


@pytest.mark.slow
def test_an_error_reaches_sentry_without_its_secrets(sentry_server, collected_static):
    port, received = sentry_server
    env = production_env(
        DJANGO_ALLOWED_HOSTS="testserver",
        BACKFILL_VAR_DIR=str(collected_static),
        SENTRY_DSN=f"http://publickey@127.0.0.1:{port}/42",
        PROBE_API_TOKEN=API_TOKEN,
        PROBE_USER_PASSWORD="hunter2-correct-horse",
        LOG_FORMAT="json",
    )

    result = subprocess.run(
        [sys.executable, "-m", "tests.runtime.sentry_probe"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    events = [
        json.loads(line)
        for body in received
        for line in body.decode().splitlines()
        if line.startswith("{") and '"exception"' in line
    ]
    assert events, received
    event = events[0]
    assert event["exception"]["values"][0]["type"] == "RuntimeError"
    assert event["environment"] == "production"
    frames = event["exception"]["values"][0]["stacktrace"]["frames"]
    assert any(frame.get("vars") for frame in frames)  # local variables are sent, scrubbed
    everything = b"".join(received).decode()
    for secret in (
        env["DJANGO_SECRET_KEY"],
        env["PROVISIONING_TOKEN"],
        API_TOKEN,
        "hunter2-correct-horse",
        "probe-session-cookie-value",
    ):
        assert secret not in everything, secret
    # And the same error in the process's own log lines is scrubbed too.
    for secret in (env["PROVISIONING_TOKEN"], "hunter2-correct-horse", API_TOKEN):
        assert secret not in result.stderr + result.stdout
