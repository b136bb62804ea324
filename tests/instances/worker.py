"""A real Celery worker process for tests: `.venv/bin/celery -A portal worker` on our queue.

It runs tests.instances.worker_settings against the test database of the running test (the
test must use `django_db(transaction=True)` so that its rows are committed and visible), the
test Redis database as broker, and the simulator the test started. Started in its own process
group so that `kill()` can SIGKILL the main process and its pool child together.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import redis
from django.conf import settings
from django.db import connection

REPO = Path(__file__).resolve().parents[2]


def purge_broker() -> None:
    """Empty our private Redis database: no stale task of an earlier run may be delivered."""
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()


class CeleryWorker:
    def __init__(self, log_dir: Path, *, simulator, extra_env: dict[str, str] | None = None):
        self.log_dir = log_dir
        self.simulator = simulator
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.starts = 0

    def env(self) -> dict[str, str]:
        database = connection.settings_dict
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.instances.worker_settings",
            "TEST_DB_NAME": database["NAME"],  # the test database, e.g. test_backfill_h5
            "TEST_DB_USER": database["USER"],
            "TEST_DB_HOST": database["HOST"],
            "TEST_DB_PORT": str(database["PORT"]),
            "TEST_REDIS_URL": settings.CELERY_BROKER_URL,
            "SIMULATOR_URL": self.simulator.url,
            "PROVISIONING_TOKEN": self.simulator.token,
            "PYTHONPATH": str(REPO),
            **self.extra_env,
        }

    def start(self, timeout: float = 30) -> CeleryWorker:
        self.starts += 1
        self.log_path = self.log_dir / f"worker-{self.starts}.log"
        log = self.log_path.open("w")
        self.process = subprocess.Popen(  # noqa: S603 - our own program, fixed arguments
            [
                str(REPO / ".venv/bin/celery"),
                "-A",
                "portal",
                "worker",
                "--pool=prefork",
                "--concurrency=1",
                "-Q",
                "backfill",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"test-{uuid.uuid4().hex[:8]}@%h",
            ],  # fmt: skip
            cwd=REPO,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log_path.read_text():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"the Celery worker did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the worker and its pool child: nothing gets to clean up or acknowledge."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        except ProcessLookupError:
            pass
        self.process = None
