"""Two hosts, one database: the portal scaled out, and one host lost in the middle of the work.

Three Linux network namespaces joined by a bridge (iproute2): `svc` runs PostgreSQL, Redis,
the provisioning simulator and the one Celery beat; hosts `a` and `b` each run a web process
(gunicorn, production settings) and a Celery worker. The test process sits on the bridge and
plays the load balancer (a trusted proxy). Only addresses inside the namespaces' network and
loopback are used.

100 launches go through both webs; after the first 50, every process of host `a` is SIGKILLed
(a machine losing power) while its worker holds provisioning work; the other 50 go through
`b`. All 100 instances must come up, with one machine each, the periodic jobs must have run
once per period (one beat, whatever the number of workers), one launch is followed by its
request id from the web to the backend call in the worker, and no secret of the run appears
in any log.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from portal.simulator.catalog import DEFAULT_CATALOG, H100
from tests.runtime.conftest import production_env
from tests.runtime.servers import (
    REPO,
    VENV_BIN,
    Network,
    PostgresServer,
    RedisServer,
    in_netns,
    json_lines,
    port_answers,
    scratch_dir,
    stop_group,
    wait_until,
)

pytestmark = pytest.mark.slow

LAUNCHES = 100
PERIOD = 5  # seconds between two runs of reconciliation and of the capacity refresh
WEB_PORT = 8000
CUSTOMER_PASSWORD = "backfill-demo-customer"  # seed_demo's


class Run:
    """What the scenario did and saw, for the tests below to check."""

    def __init__(self, work: Path):
        self.work = work
        self.logs: dict[str, Path] = {}
        self.secrets: dict[str, str] = {}
        self.responses: list[dict] = []
        self.killed_at = 0.0
        self.beat_window = (0.0, 0.0)
        self.states: dict[str, int] = {}
        self.instances: list[tuple] = []
        self.machines: list[dict] = []
        self.metrics_b = ""
        self.login_status = 0
        self.error: str = ""


def _start(run: Run, name: str, netns: str, command: list[str], env: dict) -> subprocess.Popen:
    log = run.work / f"{name}.log"
    run.logs[name] = log
    return subprocess.Popen(  # noqa: S603 - our own programs
        in_netns(netns, command),
        cwd=REPO,
        env={**env, "BACKFILL_PROCESS": name},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def run(collected_static, migrated_postgres) -> Run:  # noqa: C901 - one scenario, step by step
    work = scratch_dir("backfill-two-hosts-")
    result = Run(work)
    net = Network(["svc", "a", "b"]).up()
    svc, host_a, host_b = net.hosts["svc"], net.hosts["a"], net.hosts["b"]
    processes: list[subprocess.Popen] = []
    postgres = redis_server = None
    try:
        pg_password = "pg-" + secrets.token_hex(12)
        redis_password = "redis-" + secrets.token_hex(12)
        postgres = PostgresServer(host=svc, netns=net.netns["svc"])
        postgres.start(template=migrated_postgres)
        postgres.sql(f"ALTER USER postgres PASSWORD '{pg_password}'")
        redis_server = RedisServer(host=svc, netns=net.netns["svc"])
        redis_server.start()
        subprocess.run(
            ["redis-cli", "-h", svc, "-p", str(redis_server.port), "CONFIG", "SET"]
            + ["requirepass", redis_password],
            check=True,
            capture_output=True,
        )
        sim_token = secrets.token_hex(16)
        catalog = work / "fleet.json"
        catalog.write_text(
            json.dumps(
                {
                    "instance_types": DEFAULT_CATALOG["instance_types"],
                    "nodes": [{"region": "us-east-1", "gpu_model": H100, "gpus": 8, "count": 16}],
                }
            )
        )
        result.secrets = {
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "PROVISIONING_TOKEN": sim_token,
            "METRICS_TOKEN": "metrics-" + secrets.token_hex(16),
            "database password": pg_password,
            "redis password": redis_password,
            "customer password": CUSTOMER_PASSWORD,
        }
        env = production_env(
            DJANGO_SECRET_KEY=result.secrets["DJANGO_SECRET_KEY"],
            DATABASE_URL=f"postgres://postgres:{pg_password}@{svc}:{postgres.port}/backfill",
            REDIS_URL=f"redis://:{redis_password}@{svc}:{redis_server.port}/0",
            DJANGO_ALLOWED_HOSTS=f"{host_a},{host_b}",
            PROVISIONING_TOKEN=sim_token,
            SIMULATOR_URL=f"http://{svc}:8070",
            METRICS_TOKEN=result.secrets["METRICS_TOKEN"],
            TRUSTED_PROXIES=net.bridge_address,  # this test is the load balancer
            EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend",
            BACKFILL_VAR_DIR=str(collected_static),
            CELERY_VISIBILITY_TIMEOUT="10",
            WEB_CONCURRENCY="2",
            WEB_THREADS="2",
            GUNICORN_BIND=f"0.0.0.0:{WEB_PORT}",
        )
        _manage(env, "seed_demo")  # on the tables of migrated_postgres
        setup = subprocess.run(
            # Periodic messages expire after 60 s: under the launch burst none is dropped as
            # stale, so every one beat sends must run (once).
            [sys.executable, "-m", "tests.runtime.portal_setup"]
            + [f"--quota=us-east-1/h100={LAUNCHES}", f"--period={PERIOD}", "--expires=60"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
        )
        assert setup.returncode == 0, setup.stderr
        prepared = json.loads(setup.stdout.strip().splitlines()[-1])
        result.secrets["API token 1"], result.secrets["API token 2"] = prepared["tokens"]

        python = str(VENV_BIN / "python")
        processes.append(
            _start(
                result,
                "simulator",
                net.netns["svc"],
                [python, "-m", "portal.simulator", "--host", svc, "--port", "8070"]
                + ["--state", str(work / "simulator.json"), "--catalog", str(catalog)],
                {**env, "SIMULATOR_TOKEN": sim_token},
            )
        )
        for name in ("a", "b"):
            host_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(work / f"metrics-{name}")}
            processes.append(
                _start(
                    result, f"web-{name}", net.netns[name], [str(VENV_BIN / "gunicorn")], host_env
                )
            )
            processes.append(
                _start(
                    result,
                    f"worker-{name}",
                    net.netns[name],
                    [str(VENV_BIN / "celery"), "-A", "portal", "worker", "--concurrency=2"]
                    + ["--loglevel=INFO", "-n", f"worker@host-{name}"],
                    host_env,
                )
            )
        wait_until(lambda: port_answers(svc, 8070), 20, "the simulator")
        for host in (host_a, host_b):
            wait_until(
                lambda host=host: _ready(host, result.secrets["METRICS_TOKEN"]),
                90,
                f"web and worker of {host} to be ready",
                interval=0.5,
                detail=lambda: "\n".join(p.read_text()[-3000:] for p in result.logs.values()),
            )
        beat_started = time.time()
        processes.append(
            _start(
                result,
                "beat",
                net.netns["svc"],
                [str(VENV_BIN / "celery"), "-A", "portal", "beat", "--loglevel=INFO"],
                env,
            )
        )

        # Launches through both webs, as a load balancer would spread them.
        api_body = {
            "instance_type": "gpu_1x_h100",
            "region": "us-east-1",
            "image": prepared["image"],
            "ssh_key_ids": [prepared["ssh_key_id"]],
        }

        def launch(number: int, host: str) -> dict:
            response = requests.post(
                f"http://{net.hosts[host]}:{WEB_PORT}/api/v1/instances/",
                json={**api_body, "name": f"job-{number:03d}"},
                headers={
                    "Authorization": f"Bearer {prepared['tokens'][number % 2]}",
                    "Idempotency-Key": str(uuid.uuid4()),
                    "X-Forwarded-Proto": "https",
                    "X-Forwarded-For": "198.51.100.7",
                },
                timeout=30,
            )
            return {
                "number": number,
                "host": host,
                "status": response.status_code,
                "body": response.text[:500],
                "request_id": response.headers.get("X-Request-ID"),
                "id": response.json().get("id") if response.status_code == 201 else None,
            }

        half = LAUNCHES // 2
        with ThreadPoolExecutor(max_workers=6) as pool:
            result.responses += pool.map(lambda n: launch(n, "a" if n % 2 else "b"), range(half))
        time.sleep(1)  # the first provisioning tasks are under way in both workers
        result.killed_at = time.time()
        killed = net.kill_everything_in("a")
        assert killed, "host a had no process to kill"
        with ThreadPoolExecutor(max_workers=6) as pool:
            result.responses += pool.map(lambda n: launch(n, "b"), range(half, LAUNCHES))

        result.login_status = _log_in(host_b)

        def all_running() -> bool:
            rows = postgres.sql(
                "SELECT state, count(*) FROM instances_instance GROUP BY state", "backfill"
            )
            result.states = {
                state: int(n) for state, n in (line.split("|") for line in rows.splitlines())
            }
            return result.states.get("running", 0) >= LAUNCHES

        wait_until(
            all_running, 150, "every instance to run", interval=1, detail=lambda: result.states
        )
        time.sleep(PERIOD + 1)  # one more period of the periodic jobs, after the work
        result.beat_window = (beat_started, time.time())
        rows = postgres.sql(
            "SELECT id, name, state, backend_id, request_id FROM instances_instance ORDER BY id",
            "backfill",
        )
        result.instances = [tuple(line.split("|")) for line in rows.splitlines()]
        result.machines = requests.get(
            f"http://{svc}:8070/v1/machines",
            headers={"Authorization": f"Bearer {sim_token}"},
            timeout=10,
        ).json()["machines"]
        result.metrics_b = requests.get(
            f"http://{host_b}:{WEB_PORT}/metrics",
            headers={"Authorization": f"Bearer {result.secrets['METRICS_TOKEN']}"},
            timeout=10,
        ).text
    except Exception as exc:  # kept for the tests' messages, with the logs' tails
        result.error = f"{type(exc).__name__}: {exc}\n" + "\n".join(
            f"--- {name}\n{path.read_text(errors='replace')[-4000:]}"
            for name, path in result.logs.items()
        )
    finally:
        for process in reversed(processes):
            stop_group(process, timeout=15)
        if redis_server is not None:
            redis_server.stop()
        if postgres is not None:
            postgres.stop()
        net.down()
    yield result
    shutil.rmtree(work, ignore_errors=True)


def _ready(host: str, token: str) -> bool:
    try:
        response = requests.get(
            f"http://{host}:{WEB_PORT}/readyz",
            headers={"Authorization": f"Bearer {token}"},
            timeout=2,
        )
    except requests.RequestException:
        return False
    if response.status_code != 200:
        return False
    return "2 worker(s)" in response.text  # both hosts' workers are up


def _log_in(host: str) -> int:
    """The demo customer logs in through the web (the proxy says https), then opens the
    dashboard: the password travels, and must not be written anywhere."""
    base = f"http://{host}:{WEB_PORT}"
    proxy = {"X-Forwarded-Proto": "https"}
    page = requests.get(f"{base}/accounts/login/", headers=proxy, timeout=10)
    csrf = page.cookies.get("csrftoken") or re.search(
        r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text
    ).group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = requests.post(
        f"{base}/accounts/login/",
        data={
            "login": "demo@backfill.localhost",
            "password": CUSTOMER_PASSWORD,
            "csrfmiddlewaretoken": token,
        },
        headers={
            **proxy,
            "Cookie": f"csrftoken={csrf}",
            "Referer": f"https://{host}:{WEB_PORT}/accounts/login/",
            "Origin": f"https://{host}:{WEB_PORT}",
        },
        allow_redirects=False,
        timeout=10,
    )
    session = response.cookies.get("sessionid")
    if session:
        requests.get(
            f"{base}/dashboard/", headers={**proxy, "Cookie": f"sessionid={session}"}, timeout=10
        )
    return response.status_code


def _check(run: Run) -> None:
    assert not run.error, run.error


def test_all_launches_are_accepted_through_both_webs(run):
    _check(run)
    statuses = Counter(r["status"] for r in run.responses)
    assert statuses == {201: LAUNCHES}, [r for r in run.responses if r["status"] != 201][:3]
    hosts = Counter(r["host"] for r in run.responses)
    assert len(hosts) == 2 and min(hosts.values()) >= LAUNCHES // 4


def test_every_instance_runs_on_exactly_one_machine_after_one_host_died(run):
    _check(run)
    assert run.states == {"running": LAUNCHES}
    assert len(run.instances) == LAUNCHES
    assert len({name for _, name, *_ in run.instances}) == LAUNCHES
    live = [m for m in run.machines if m["state"] not in ("terminated", "failed")]
    assert len(live) == LAUNCHES
    assert {m["id"] for m in live} == {backend_id for _, _, _, backend_id, _ in run.instances}
    assert {m["request_id"] for m in live} == {rid for *_, rid in run.instances}


def test_the_dead_host_held_work_that_the_other_host_finished(run):
    _check(run)
    died = run.logs["worker-a"].read_text(errors="replace")
    assert "instance_provision" in died  # a's worker had taken launches before it died
    after = [
        line
        for line in json_lines(run.logs["worker-b"])
        if "succeeded" in line.get("event", "")
        and line.get("timestamp", "")
        > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(run.killed_at))
    ]
    assert after, "host b's worker ran nothing after host a died"


def test_each_periodic_job_ran_once_per_period(run):
    _check(run)
    sends = Counter()
    for line in json_lines(run.logs["beat"]):
        match = re.search(r"Sending due task .* \(([\w.]+)\)", line.get("event", ""))
        if match:
            sends[match.group(1)] += 1
    successes = defaultdict(Counter)
    for name in ("worker-a", "worker-b"):
        for line in json_lines(run.logs[name]):
            if line.get("logger") == "celery.app.trace" and "succeeded" in line.get("event", ""):
                successes[line.get("task")][line.get("task_id")] += 1
    start, end = run.beat_window
    periods = (end - start) / PERIOD
    for task in (
        "portal.instances.tasks.instances_reconcile",
        "portal.instances.tasks.capacity_refresh",
    ):
        # One beat sends each job once a period, however many hosts run workers...
        assert periods - 3 <= sends[task] <= periods + 1, (task, sends[task], periods)
        # ...and each message it sent ran to the end once, on one host or the other (the last
        # one may still be on its way when the logs are read).
        ran = successes[task]
        assert set(ran.values()) == {1}, ran
        assert sends[task] - 1 <= len(ran) <= sends[task], (task, len(ran), sends[task])


def test_one_launch_is_followed_by_its_request_id_from_the_click_to_the_backend(run):
    _check(run)
    chosen = next(r for r in reversed(run.responses) if r["host"] == "b" and r["request_id"])
    request_id = chosen["request_id"]
    web = [line for line in json_lines(run.logs["web-b"]) if line.get("request_id") == request_id]
    workers = [
        line
        for name in ("worker-a", "worker-b")
        for line in json_lines(run.logs[name])
        if line.get("request_id") == request_id
    ]
    events = [line["event"] for line in web]
    assert any(f"job-{chosen['number']:03d} launched" in e for e in events), events
    assert any(e.startswith("POST /api/v1/instances/ 201") for e in events), events
    launched = next(line for line in web if "launched" in line["event"])
    assert launched["org"] == "acme-ai" and launched["user_id"]
    assert launched["process"] == "web-b"
    tasks = {line.get("task") for line in workers}
    assert "portal.instances.tasks.instance_provision" in tasks
    assert any(
        line["event"].startswith("backend call simulator POST /v1/machines") for line in workers
    ), [line["event"] for line in workers]
    # The provisioning task moved it on (later steps may be reconciliation's, with no request).
    assert any("pending -> provisioning" in line["event"] for line in workers)
    assert all(line["org"] == "acme-ai" for line in workers)


def test_no_secret_of_the_run_appears_in_any_log(run):
    _check(run)
    assert run.login_status == 302  # the customer's password was used
    texts = {name: path.read_text(errors="replace") for name, path in run.logs.items()}
    assert all(texts.values())
    leaks = [
        (what, name)
        for what, value in run.secrets.items()
        for name, text in texts.items()
        if value in text
    ]
    assert leaks == []


def test_each_host_adds_up_the_metrics_of_its_processes(run):
    _check(run)
    launched_via_b = sum(1 for r in run.responses if r["host"] == "b")
    counted = re.search(
        r'^backfill_instance_launches_total\{region="us-east-1"\} ([\d.]+)$', run.metrics_b, re.M
    )
    assert counted and float(counted.group(1)) == launched_via_b
    assert re.search(
        r'^backfill_task_runtime_seconds_count\{queue="backfill",'
        r'task="portal.instances.tasks.instance_provision"\} [1-9]',
        run.metrics_b,
        re.M,
    )
    running = 'backfill_instances{instance_type="gpu_1x_h100",region="us-east-1",state="running"}'
    assert f"{running} {LAUNCHES}.0" in run.metrics_b
    capacity = dict(
        re.findall(
            r'^backfill_capacity_gpus\{gpu_model="h100",kind="(\w+)",'
            r'region="us-east-1"\} ([\d.]+)$',
            run.metrics_b,
            re.M,
        )
    )
    assert capacity == {"fleet": "128.0", "internal": "0.0", "sold": "100.0", "free": "28.0"}
