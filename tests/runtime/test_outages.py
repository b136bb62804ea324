"""Outages of the portal's own parts, for real: PostgreSQL restarted, Redis restarted, the SMTP
server gone for a minute, each while 20 launches are in flight.

The test starts a PostgreSQL (initdb/pg_ctl of the installed server) and a Redis server of its
own on free ports, an SMTP server (aiosmtpd, in this process) and the simulator, and runs the
portal's processes against them as production runs them: gunicorn, a Celery worker and beat
(production settings with the waits scaled from minutes to seconds: tests/runtime/
outage_settings.py). After each outage, once the launches have settled:

- every launch ended running or failed;
- the backend holds exactly one live machine per running instance, and none for a failed one;
- no usage interval is open for an instance that is not running;
- every e-mail the outbox holds has left, and each instance's arrived exactly once;
- while PostgreSQL was down the web answered 503 with the branded page (JSON under /api/),
  never a traceback, and it answers again afterwards without being restarted.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from aiosmtpd.controller import Controller

from portal.simulator.catalog import DEFAULT_CATALOG, H100
from portal.simulator.process import SimulatorProcess
from tests.runtime.conftest import production_env
from tests.runtime.servers import (
    VENV_BIN,
    PostgresServer,
    RedisServer,
    free_port,
    scratch_dir,
    stop_group,
    wait_until,
)

pytestmark = pytest.mark.slow

LAUNCHES = 20
PERIOD = 3  # seconds between two runs of reconciliation and of the capacity refresh
PROXY = {"X-Forwarded-Proto": "https"}  # this test is the trusted proxy in front of gunicorn
LIVE = {"provisioning", "running", "stopping", "stopped", "starting", "rebooting", "terminating"}
CUSTOMER = "demo@backfill.localhost"
DASHBOARD = "/o/acme-ai/"  # the demo organization's dashboard: the session, the user, its data


class Sink:
    """An SMTP server that keeps (recipient, subject) of what it receives; stop and start it."""

    def __init__(self, port: int):
        self.port = port
        self.received: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        subject = re.sub(r"^\[[^]]*\]\s*", "", str(message["subject"] or ""))
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        with self.lock:
            self.received.extend((rcpt, subject, text) for rcpt in envelope.rcpt_tos)
        return "250 OK"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def subjects(self) -> Counter:
        """Subjects without the site's prefix ("[Backfill] …")."""
        with self.lock:
            return Counter(subject for _rcpt, subject, _text in self.received)

    def mails_about(self, instance: dict) -> int:
        """Messages that tell of this instance's end state: its own ("NAME is running", "NAME
        failed"), or a summary of several running together that lists it."""
        name = instance["name"]
        own = f"{name} is running" if instance["state"] == "running" else f"{name} failed"
        with self.lock:
            return sum(
                1
                for _rcpt, subject, text in self.received
                if subject == own
                or (
                    instance["state"] == "running"
                    and re.fullmatch(r"\d+ instances are running in .*", subject)
                    and f"- {name} (" in text
                )
            )


@dataclass
class Stack:
    work: Path
    postgres: PostgresServer
    redis: RedisServer
    sink: Sink
    simulator: SimulatorProcess
    url: str
    setup: dict
    env: dict
    logs: dict[str, Path] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    session: str = ""

    def sql(self, statement: str) -> str:
        return self.postgres.sql(statement, "backfill")

    def rows(self, statement: str) -> list[list[str]]:
        return [line.split("|") for line in self.sql(statement).splitlines() if line]

    def start(self, name: str, command: list[str]) -> None:
        log = self.work / f"{name}.log"
        self.logs[name] = log
        self.processes[name] = subprocess.Popen(  # noqa: S603 - our own programs
            command,
            cwd=self.env["PYTHONPATH"],
            env={**self.env, "BACKFILL_PROCESS": name},
            stdout=log.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def tails(self) -> str:
        return "\n".join(
            f"--- {name}\n{path.read_text(errors='replace')[-3000:]}"
            for name, path in self.logs.items()
            if name != "beat"
        )

    def alive(self) -> dict[str, bool]:
        return {name: process.poll() is None for name, process in self.processes.items()}

    def launch(self, prefix: str, count: int = LAUNCHES) -> list[int]:
        """`count` launches through the API at once; returns the statuses."""
        body = {
            "instance_type": "gpu_1x_h100",
            "region": "us-east-1",
            "image": self.setup["image"],
            "ssh_key_ids": [self.setup["ssh_key_id"]],
        }

        def one(number: int) -> int:
            return requests.post(
                f"{self.url}/api/v1/instances/",
                json={**body, "name": f"{prefix}-{number:02d}"},
                headers={
                    **PROXY,
                    "Authorization": f"Bearer {self.setup['tokens'][number % 2]}",
                    "Idempotency-Key": str(uuid.uuid4()),
                },
                timeout=30,
            ).status_code

        with ThreadPoolExecutor(max_workers=10) as pool:
            return list(pool.map(one, range(count)))

    def get(self, path: str, **headers: str) -> requests.Response:
        cookies = {"sessionid": self.session} if self.session else {}
        return requests.get(
            f"{self.url}{path}",
            headers={**PROXY, **headers},
            cookies=cookies,
            allow_redirects=False,
            timeout=15,
        )


def _manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=env["PYTHONPATH"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _ready(url: str) -> bool:
    try:
        response = requests.get(f"{url}/readyz", headers=PROXY, timeout=2)
    except requests.RequestException:
        return False
    return response.status_code == 200


@pytest.fixture(scope="module")
def stack(collected_static, migrated_postgres):
    work = scratch_dir("backfill-outages-")
    postgres = PostgresServer().start(template=migrated_postgres)
    redis_server = RedisServer().start()
    sink = Sink(free_port())
    sink.start()
    catalog = work / "fleet.json"
    catalog.write_text(
        json.dumps(
            {
                "instance_types": DEFAULT_CATALOG["instance_types"],
                "nodes": [{"region": "us-east-1", "gpu_model": H100, "gpus": 8, "count": 16}],
            }
        )
    )
    # Realistic delays (provisioning takes about 5 s): the launches are in flight during the
    # outages. The simulator writes what it answered before answering (a restart loses nothing).
    simulator = SimulatorProcess(work / "simulator.json", catalog=str(catalog), zero_delays=False)
    simulator.start()
    password = "pg-" + secrets.token_hex(8)
    postgres.sql(f"ALTER USER postgres PASSWORD '{password}'")
    port = free_port()
    env = production_env(
        DJANGO_SETTINGS_MODULE="tests.runtime.outage_settings",
        DATABASE_URL=f"postgres://postgres:{password}@127.0.0.1:{postgres.port}/backfill",
        REDIS_URL=redis_server.url(),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        SITE_URL="https://backfill.test",
        PROVISIONING_TOKEN=simulator.token,
        SIMULATOR_URL=simulator.url,
        TRUSTED_PROXIES="127.0.0.1",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(sink.port),
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        BACKFILL_VAR_DIR=str(collected_static),
        WEB_CONCURRENCY="2",
        WEB_THREADS="4",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        LOG_FORMAT="console",
    )
    run = None
    begun = time.monotonic()
    try:
        _manage(env, "seed_demo")  # on the tables of migrated_postgres
        setup = subprocess.run(
            [sys.executable, "-m", "tests.runtime.portal_setup"]
            + ["--quota=us-east-1/h100=100", f"--period={PERIOD}", "--expires=30"],
            cwd=env["PYTHONPATH"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert setup.returncode == 0, setup.stderr
        run = Stack(
            work=work,
            postgres=postgres,
            redis=redis_server,
            sink=sink,
            simulator=simulator,
            url=f"http://127.0.0.1:{port}",
            setup=json.loads(setup.stdout.strip().splitlines()[-1]),
            env=env,
        )
        # The outbox's sweep as often as reconciliation (production: every 15 s).
        run.sql(
            "UPDATE django_celery_beat_periodictask SET interval_id = (SELECT interval_id FROM "
            "django_celery_beat_periodictask WHERE task LIKE '%instances_reconcile') "
            "WHERE task LIKE '%notifications_sweep'"
        )
        run.start("web", [str(VENV_BIN / "gunicorn")])
        run.start(
            "worker",
            [str(VENV_BIN / "celery"), "-A", "portal", "worker", "--concurrency=2"]
            + ["--loglevel=INFO", "-n", "worker@outages"],
        )
        run.start("beat", [str(VENV_BIN / "celery"), "-A", "portal", "beat", "--loglevel=INFO"])
        wait_until(lambda: _ready(run.url), 90, "web and worker to be ready", 0.5, detail=run.tails)
        run.session = _log_in(run.url)
        assert run.get(DASHBOARD).status_code == 200
        print(f"outages: the stack is up in {time.monotonic() - begun:.0f} s")
        yield run
    finally:
        if run is not None:
            for process in run.processes.values():
                stop_group(process, timeout=15)
            # The last run's logs, to read after a failure.
            kept = Path("/tmp/backfill-outages-last-logs")
            shutil.rmtree(kept, ignore_errors=True)
            kept.mkdir()
            for log in run.logs.values():
                shutil.copy(log, kept / log.name)
        simulator.stop()
        sink.stop()
        redis_server.stop()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)


def _log_in(url: str) -> str:
    """The demo customer signs in (cookies by hand: they are Secure, the proxy says https)."""
    page = requests.get(f"{url}/accounts/login/", headers=PROXY, timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    origin = "https://" + url.split("://", 1)[1]
    response = requests.post(
        f"{url}/accounts/login/",
        data={
            "login": CUSTOMER,
            "password": "backfill-demo-customer",
            "csrfmiddlewaretoken": token,
        },
        headers={
            **PROXY,
            "Referer": f"{origin}/accounts/login/",
            "Origin": origin,
            "Cookie": f"csrftoken={page.cookies['csrftoken']}",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text[:2000]
    return response.cookies["sessionid"]


def _settled(stack: Stack, prefix: str, count: int, timeout: float = 120) -> list[dict]:
    """Wait until every launch of `prefix` ended running or failed, the backend agrees (a live
    machine for each running one, none for a failed one), and the outbox is empty."""
    seen: dict = {}

    def done() -> bool:
        rows = stack.rows(
            "SELECT id, name, state, backend_id, request_id FROM instances_instance "
            f"WHERE name LIKE '{prefix}-%' ORDER BY name"
        )
        seen["instances"] = [
            dict(zip(("id", "name", "state", "backend_id", "request_id"), r, strict=True))
            for r in rows
        ]
        if len(rows) != count or any(
            i["state"] not in ("running", "failed") for i in seen["instances"]
        ):
            return False
        seen["machines"] = stack.simulator.control.state()["machines"]
        live = Counter(m["request_id"] for m in seen["machines"] if m["state"] in LIVE)
        if any(
            live[i["request_id"]] != (1 if i["state"] == "running" else 0)
            for i in seen["instances"]
        ):
            return False
        return (
            stack.sql("SELECT count(*) FROM notifications_notification WHERE sent_at IS NULL")
            == "0"
        )

    wait_until(
        done,
        timeout,
        f"the {prefix} launches to settle",
        interval=1,
        detail=lambda: f"{seen}\n{_unsent(stack)}\n{stack.tails()}",
    )
    return seen["instances"]


def _unsent(stack: Stack) -> str:
    return stack.sql(
        "SELECT id, kind, attempts, claimed_until, next_attempt_at, last_error FROM "
        "notifications_notification WHERE sent_at IS NULL"
    )


def _check(stack: Stack, prefix: str, count: int = LAUNCHES) -> list[dict]:
    instances = _settled(stack, prefix, count)
    states = Counter(i["state"] for i in instances)
    assert set(states) <= {"running", "failed"}, states

    # Exactly one machine per running instance: the one it knows.
    machines = stack.simulator.control.state()["machines"]
    live = [m for m in machines if m["state"] in LIVE]
    by_request = Counter(m["request_id"] for m in live)
    for instance in instances:
        if instance["state"] == "running":
            assert by_request[instance["request_id"]] == 1, instance
            (machine,) = (m for m in live if m["request_id"] == instance["request_id"])
            assert machine["id"] == instance["backend_id"]
        else:
            assert by_request[instance["request_id"]] == 0, instance

    # Billing: open intervals only for running instances (of every scenario so far).
    open_elsewhere = stack.sql(
        "SELECT count(*) FROM billing_usageinterval u JOIN instances_instance i ON "
        "i.id = u.instance_id WHERE u.\"end\" IS NULL AND i.state <> 'running'"
    )
    assert open_elsewhere == "0"
    running_without = stack.sql(
        "SELECT count(*) FROM instances_instance i WHERE i.state = 'running' AND NOT EXISTS "
        '(SELECT 1 FROM billing_usageinterval u WHERE u.instance_id = i.id AND u."end" IS NULL)'
    )
    assert running_without == "0"

    # Every instance's mail (running or failed, alone or in a summary) arrived, once.
    wait_until(
        lambda: all(stack.sink.mails_about(i) >= 1 for i in instances),
        30,
        "every instance's mail to arrive",
        detail=lambda: f"{stack.sink.subjects()}",
    )
    time.sleep(3)  # a late retry or a second sweep would deliver a second copy now
    for instance in instances:
        assert stack.sink.mails_about(instance) == 1, (instance, stack.sink.subjects())
    with stack.sink.lock:
        received = [(rcpt, subject, text) for rcpt, subject, text in stack.sink.received]
    assert len(received) == len(set(received)), "a message arrived twice"
    assert all(stack.alive().values()), (stack.alive(), stack.tails())
    return instances


def test_postgresql_restarted_while_20_launches_are_in_flight(stack):
    started = time.monotonic()
    assert stack.launch("pg") == [201] * LAUNCHES
    stack.postgres.halt()
    down = time.monotonic()
    pages, api = [], []
    try:
        while time.monotonic() - down < 10:
            pages.append(stack.get(DASHBOARD))
            api.append(
                stack.get("/api/v1/instances/", Authorization=f"Bearer {stack.setup['tokens'][0]}")
            )
            time.sleep(1)
    finally:
        stack.postgres.resume()

    for page in pages:
        body = page.text
        assert page.status_code == 503, (page.status_code, body[:3000])
        assert "Backfill is back in a moment" in body
        assert "Traceback" not in body and "OperationalError" not in body
        assert page.headers["Retry-After"] == "30"
    for answer in api:
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "unavailable"
    # Back without restarting anything: the same web process answers.
    web = stack.processes["web"].pid
    wait_until(
        lambda: stack.get(DASHBOARD).status_code == 200,
        30,
        "the dashboard again",
        detail=lambda: f"{stack.get(DASHBOARD).status_code}\n{stack.tails()}",
    )
    assert stack.processes["web"].pid == web and stack.alive()["web"]

    instances = _check(stack, "pg")
    print(
        f"postgres outage: {Counter(i['state'] for i in instances)} in "
        f"{time.monotonic() - started:.0f} s"
    )


def test_redis_restarted_while_20_launches_are_in_flight(stack):
    started = time.monotonic()
    assert stack.launch("redis") == [201] * LAUNCHES
    stack.redis.halt()  # with its queues: no persistence
    down = time.monotonic()
    pages = []
    try:
        # The pages and the API answer (the cache misses; nothing can be enqueued), and a launch
        # is accepted: reconciliation drives it once the broker is back.
        during = stack.launch("redisdown", count=1)
        while time.monotonic() - down < 6:
            pages.append(stack.get(DASHBOARD).status_code)
            pages.append(
                stack.get(
                    "/api/v1/instances/", Authorization=f"Bearer {stack.setup['tokens'][0]}"
                ).status_code
            )
            time.sleep(0.5)
    finally:
        stack.redis.resume()
    assert during == [201]
    assert set(pages) == {200}, Counter(pages)
    _check(stack, "redisdown", count=1)

    instances = _check(stack, "redis")
    assert stack.get(DASHBOARD).status_code == 200
    print(
        f"redis outage: {Counter(i['state'] for i in instances)} in "
        f"{time.monotonic() - started:.0f} s"
    )


def test_smtp_server_gone_for_a_minute_while_20_launches_are_in_flight(stack):
    started = time.monotonic()
    stack.sink.stop()
    try:
        assert stack.launch("smtp") == [201] * LAUNCHES
        # The pages answer meanwhile; the mails wait in the outbox.
        assert stack.get(DASHBOARD).status_code == 200
        wait_until(
            lambda: (
                stack.sql(
                    "SELECT count(*) FROM notifications_notification WHERE sent_at IS NULL "
                    "AND attempts > 0"
                )
                != "0"
            ),
            30,
            "a mail the server refused",
        )
        time.sleep(max(0.0, 60 - (time.monotonic() - started)))
        assert (
            stack.sql("SELECT count(*) FROM notifications_notification WHERE sent_at IS NULL")
            != "0"
        )
    finally:
        stack.sink.start()

    instances = _check(stack, "smtp")
    print(
        f"smtp outage: {Counter(i['state'] for i in instances)} in "
        f"{time.monotonic() - started:.0f} s"
    )
