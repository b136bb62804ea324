"""`make run` for real (bin/run, under supervisord): a process that dies is restarted while the
rest keeps serving, and PostgreSQL never sees more connections than the bound bin/run prints.

The test runs bin/run itself, with a PostgreSQL and a Redis of its own (free ports, its own
directories), so that pg_stat_activity counts only this portal's connections.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.runtime.servers import (
    REPO,
    VENV_BIN,
    PostgresServer,
    RedisServer,
    free_port,
    scratch_dir,
    stop_group,
    wait_until,
)

pytestmark = pytest.mark.slow


@dataclass
class MakeRun:
    process: subprocess.Popen
    log: Path
    url: str
    conf: Path
    env: dict
    postgres: PostgresServer
    bound: int = 0
    setup: dict = field(default_factory=dict)

    def supervisorctl(self, *args: str) -> str:
        return subprocess.run(
            [str(VENV_BIN / "supervisorctl"), "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            check=False,
        ).stdout

    def pid(self, program: str) -> int:
        return int(self.supervisorctl("pid", program).strip() or 0)

    def status(self) -> dict[str, str]:
        return {
            line.split()[0]: line.split()[1]
            for line in self.supervisorctl("status").splitlines()
            if line.strip()
        }

    def connections(self) -> int:
        return int(
            self.postgres.sql(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = 'backfill'"
                " AND backend_type = 'client backend'"
            )
        )


@pytest.fixture(scope="module")
def make_run():
    work = scratch_dir("backfill-make-run-")
    postgres = PostgresServer().start()
    password = "pg-" + secrets.token_hex(8)
    postgres.sql(f"ALTER USER postgres PASSWORD '{password}'")
    postgres.sql("CREATE DATABASE backfill")
    redis_server = RedisServer().start()
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in ("DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR", "METRICS_TOKEN", "SENTRY_DSN")
    }
    env.update(
        BACKFILL_SKIP_SETUP="1",
        BACKFILL_VAR_DIR=str(work / "var"),
        DATABASE_URL=f"postgres://postgres:{password}@127.0.0.1:{postgres.port}/backfill",
        REDIS_URL=redis_server.url(),
        PORT=str(port),
        SIMULATOR_PORT=str(free_port()),
        EMAIL_PORT=str(free_port()),
        PYTHONPATH=str(REPO),
    )
    log = work / "make-run.log"
    process = subprocess.Popen(  # noqa: S603 - the repository's own script
        ["bin/run"],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    run = MakeRun(
        process=process,
        log=log,
        url=f"http://127.0.0.1:{port}",
        conf=work / "var" / "supervisord.conf",
        env=env,
        postgres=postgres,
    )
    try:
        wait_until(
            lambda: _get(f"{run.url}/readyz") == 200,
            150,
            "make run to be ready",
            interval=0.5,
            detail=lambda: log.read_text()[-5000:],
        )
        run.bound = int(re.search(r"PostgreSQL connections:\s+at most (\d+)", log.read_text())[1])
        setup = subprocess.run(
            [sys.executable, "-m", "tests.runtime.portal_setup"]
            + ["--quota=us-east-1/h100=25", "--quota=eu-west-1/h100=13"]
            + ["--quota=us-east-1/l40s=12"],
            cwd=REPO,
            env={**env, "DJANGO_SETTINGS_MODULE": "portal.settings.dev"},
            capture_output=True,
            text=True,
        )
        assert setup.returncode == 0, setup.stderr
        run.setup = json.loads(setup.stdout.strip().splitlines()[-1])
        yield run
    finally:
        stop_group(process, timeout=60)
        redis_server.stop()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)


def _get(url: str) -> int:
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return 0


def test_make_run_prints_the_url_the_logins_and_its_connection_bound(make_run):
    banner = make_run.log.read_text()

    assert f"Backfill is starting on  {make_run.url}" in banner
    assert "admin@backfill.localhost / backfill-admin-demo" in banner
    assert "demo@backfill.localhost / backfill-demo-customer" in banner
    assert make_run.bound == 2 * 4 + 2 + 2  # web 2x4, worker 2 + its main process, beat
    assert set(make_run.status().values()) == {"RUNNING"}
    assert set(make_run.status()) == {"web", "worker", "beat", "mail", "simulator"}


def test_a_killed_worker_and_beat_are_restarted_while_the_web_keeps_answering(make_run):
    answers: list[int] = []
    stop = threading.Event()

    def keep_asking():
        while not stop.is_set():
            answers.append(_get(f"{make_run.url}/healthz"))
            time.sleep(0.1)

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        before = {name: make_run.pid(name) for name in ("worker", "beat")}
        others = {name: make_run.pid(name) for name in ("web", "simulator", "mail")}
        mark = len(make_run.log.read_text())
        for pid in before.values():
            os.killpg(pid, signal.SIGKILL)  # the process and its children, with no warning

        def restarted() -> bool:
            status = make_run.status()
            return all(
                status.get(name) == "RUNNING" and make_run.pid(name) not in (0, old)
                for name, old in before.items()
            )

        wait_until(restarted, 30, "supervisord to restart the worker and beat", interval=0.5)
        # The new worker works, and the new beat sends due tasks again.
        wait_until(
            lambda: (
                " ready." in make_run.log.read_text()[mark:]
                and "Sending due task" in make_run.log.read_text()[mark:]
            ),
            60,
            "the new worker to be ready and the new beat to send",
            interval=0.5,
            detail=lambda: "\n".join(
                line
                for line in make_run.log.read_text()[mark:].splitlines()
                if "GET /healthz" not in line
            )[-5000:],
        )
        wait_until(
            lambda: re.search(r"Task \S+ succeeded", make_run.log.read_text()[mark:]),
            60,
            "the new worker to run a task",
            interval=0.5,
        )
    finally:
        stop.set()
        asker.join()

    assert answers and set(answers) == {200}, answers  # the web never stopped answering
    # Nothing else was stopped or restarted along with them.
    assert {name: make_run.pid(name) for name in others} == others
    assert set(make_run.status().values()) == {"RUNNING"}


def test_fifty_concurrent_launches_stay_within_the_connection_bound(make_run):
    setup = make_run.setup
    places = (
        [("gpu_1x_h100", "us-east-1")] * 25
        + [("gpu_1x_h100", "eu-west-1")] * 13
        + [("gpu_1x_l40s", "us-east-1")] * 12
    )
    seen: list[int] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen.append(make_run.connections())
            time.sleep(0.05)

    def launch(number: int) -> int:
        instance_type, region = places[number]
        return requests.post(
            f"{make_run.url}/api/v1/instances/",
            json={
                "name": f"burst-{number:02d}",
                "instance_type": instance_type,
                "region": region,
                "image": setup["image"],
                "ssh_key_ids": [setup["ssh_key_id"]],
            },
            headers={
                "Authorization": f"Bearer {setup['tokens'][number % 2]}",
                "Idempotency-Key": str(uuid.uuid4()),
            },
            timeout=60,
        ).status_code

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(pool.map(launch, range(50)))
        running = "SELECT count(*) FROM instances_instance WHERE state = 'running'"
        wait_until(
            lambda: int(make_run.postgres.sql(running, "backfill")) == 50,
            90,
            "the 50 instances to run",
            interval=0.5,
        )
    finally:
        stop.set()
        watcher.join()

    assert statuses == [201] * 50
    assert max(seen) <= make_run.bound, (max(seen), make_run.bound)
    assert max(seen) >= 8  # the burst did reach PostgreSQL through several threads
