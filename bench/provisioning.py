"""Provisioning throughput: launches through Celery against the zero-delay simulator.

A real worker (prefork, concurrency 2) on the bench's Redis database runs the tasks. Baseline:
the same number of no-op tasks (bench.tasks.noop) through the same broker and worker. The
launches come from PRODUCERS (4) processes at once, each for its own organization (a portal
takes launches from many customers at a time: its gunicorn workers, API clients); the figure
runs from the first `instance_launch` call to the moment every instance runs.
Then one cluster of CLUSTER_NODES (1,000) nodes, from the `cluster_launch` call to the moment
the cluster and all its nodes run, on the same worker and simulator.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis
from django.conf import settings

from bench import seed
from bench.producer import produce
from bench.results import REPO, Results, Row
from bench.tasks import COUNTER, noop
from portal.catalog.models import GpuModel, Region
from portal.clusters.models import Cluster
from portal.clusters.models import State as ClusterState
from portal.clusters.services import cluster_launch
from portal.instances.models import Instance, State
from portal.quotas.models import Kind
from portal.quotas.services import quota_limit_set
from portal.simulator.catalog import DEFAULT_CATALOG
from portal.simulator.process import SimulatorProcess
from portal.simulator.store import journal_path
from portal.sshkeys.services import sshkey_add

LAUNCHES = int(os.environ.get("BENCH_LAUNCHES", "500"))
SIMULATOR_PORT = int(os.environ.get("BENCH_SIMULATOR_PORT", "8670"))
CLUSTER_NODES = int(os.environ.get("BENCH_CLUSTER_NODES", "1000"))
# Processes issuing the launches at once, each for its own organization, as a portal's
# gunicorn workers and API clients take launches from many customers at a time.
PRODUCERS = int(os.environ.get("BENCH_PRODUCERS", "4"))
LAUNCH_TARGET = 100  # launches per second (issue 21)
CLUSTER_TARGET_SECONDS = 10
CONCURRENCY = 2
TIMEOUT = 300
SUCCEEDED = re.compile(r"Task ([\w.]+)\[[^\]]+\] succeeded in ([\d.]+)s")


def big_fleet(gpus_per_region: int) -> dict:
    """The default instance types on one large node per region and GPU model."""
    nodes = [
        {"region": region, "gpu_model": model, "gpus": gpus_per_region, "count": 1}
        for region in ("us-east-1", "eu-west-1")
        for model in ("H100 80GB", "A100 80GB", "L40S 48GB")
    ]
    return {"instance_types": DEFAULT_CATALOG["instance_types"], "nodes": nodes}


def start_simulator(work: Path, *, name: str, catalog: dict | None = None) -> SimulatorProcess:
    state = work / f"{name}.json"
    state.unlink(missing_ok=True)
    journal_path(state).unlink(missing_ok=True)
    catalog_path = "default"
    if catalog is not None:
        (work / f"{name}-catalog.json").write_text(json.dumps(catalog))
        catalog_path = str(work / f"{name}-catalog.json")
    simulator = SimulatorProcess(
        state, token=secrets.token_hex(16), catalog=catalog_path, zero_delays=True
    )
    simulator.port = SIMULATOR_PORT
    simulator.start()
    point_at(simulator)
    return simulator


def point_at(simulator: SimulatorProcess) -> None:
    """This process's driver (get_backend reads settings on every call) talks to `simulator`."""
    settings.SIMULATOR_URL = simulator.url
    settings.PROVISIONING_TOKEN = simulator.token


class Worker:
    def __init__(self, log_path: Path, simulator: SimulatorProcess):
        self.log_path = log_path
        self.simulator = simulator
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> Worker:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "SIMULATOR_URL": self.simulator.url,
            "PROVISIONING_TOKEN": self.simulator.token,
            "PYTHONPATH": str(REPO),
        }
        self.process = subprocess.Popen(  # noqa: S603 - our own program, fixed arguments
            [
                str(Path(sys.executable).with_name("celery")),
                "-A",
                "portal",
                "worker",
                "--pool=prefork",
                f"--concurrency={CONCURRENCY}",
                "-Q",
                settings.CELERY_TASK_DEFAULT_QUEUE,
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"bench-{uuid.uuid4().hex[:8]}@%h",
            ],  # fmt: skip
            cwd=REPO,
            env=env,
            stdout=self.log_path.open("w"),
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
        raise RuntimeError(f"the Celery worker did not start; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None:
            return
        os.killpg(self.process.pid, 15)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait(10)
        self.process = None


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (the worker and its pool processes)."""
    pids = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        pids += process_tree(int(child))
    return pids


class CpuMeter:
    """CPU seconds spent by the worker's processes (the main process and its pool) between
    `start()` and `stop()`: on a shared machine, wall-clock figures move with everyone's load,
    CPU per launch much less. PostgreSQL's share is not counted: Celery's Django fix-up closes
    the database connection around every task, so most backends have exited, and their CPU
    with them, before it could be read."""

    def __init__(self, worker: Worker):
        self.worker = worker
        self.before: dict[int, float] = {}

    def _sample(self) -> dict[int, float]:
        assert self.worker.process is not None
        return {pid: cpu_seconds(pid) for pid in process_tree(self.worker.process.pid)}

    def start(self) -> None:
        self.before = self._sample()

    def stop(self) -> float:
        return sum(seconds - self.before.get(pid, 0.0) for pid, seconds in self._sample().items())


def drained(broker: redis.Redis) -> bool:
    """Nothing left in the queue and nothing delivered but unacknowledged (acks_late)."""
    return not broker.llen(settings.CELERY_TASK_DEFAULT_QUEUE) and not broker.hlen("unacked")


def noop_rate(broker: redis.Redis, n: int) -> float:
    broker.delete(COUNTER)
    started = time.perf_counter()
    for _ in range(n):
        noop.delay()
    deadline = time.monotonic() + TIMEOUT
    while int(broker.get(COUNTER) or 0) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {broker.get(COUNTER)} of {n} no-op tasks ran")
        time.sleep(0.02)
    return n / (time.perf_counter() - started)


def launch_org(staff, name: str = "Bench Launch") -> tuple:
    slug = name.lower().replace(" ", "-")
    org, owner, membership = seed.organization(name, owner_email=f"owner@{slug}.bench")
    h100 = GpuModel.objects.get(code="h100")
    for region in Region.objects.filter(code__in=["us-east-1", "eu-west-1"]):
        quota_limit_set(
            organization=org,
            region=region,
            gpu_model=h100,
            kind=Kind.ON_DEMAND,
            limit=settings.QUOTA_MAX_GPUS,
            reason="Benchmark: room for the launches",
            changed_by=staff,
        )
    key = sshkey_add(
        membership=membership, name="bench", public_key=seed.public_key("bench"), shared=True
    )
    return org, membership, key


def launch_rate(launchers: list[tuple], n: int) -> tuple[float, dict[str, int], float, float]:
    """Launches per second from the first call to all running, the n launches split between
    one producer process per (membership, key) of `launchers`, each its own organization;
    also the states at the end, the seconds until every producer's last call returned and the
    CPU seconds the calls took in all producers together.

    The producers are spawned (not forked: no inherited database or broker connection) and
    set up before a barrier; the clock (CLOCK_MONOTONIC, one for every process) starts when
    the first of them makes its first call."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(launchers) + 1)
    out = context.Queue()
    producers = [
        context.Process(
            target=produce,
            args=(
                membership.pk,
                key.pk,
                [f"bench-{i:04d}" for i in range(p, n, len(launchers))],
                start,
                out,
                seed.IMAGE,
            ),
            daemon=True,
        )
        for p, (membership, key) in enumerate(launchers)
    ]
    for process in producers:
        process.start()
    start.wait(timeout=120)
    released = time.perf_counter()
    orgs = [membership.organization_id for membership, _key in launchers]
    instances = Instance.objects.filter(organization_id__in=orgs)
    deadline = time.monotonic() + TIMEOUT
    while instances.filter(state=State.RUNNING).count() < n:
        if instances.filter(state__in=[State.FAILED]).exists() or time.monotonic() > deadline:
            break
        if not any(process.is_alive() for process in producers) and out.qsize() < len(producers):
            break  # a producer died before reporting: its traceback is above
        time.sleep(0.05)
    done = time.perf_counter()
    reports = [out.get(timeout=TIMEOUT) for _ in producers]
    for process in producers:
        process.join(timeout=30)
    first = min([began for _cpu, began, _ended in reports], default=released)
    states: dict[str, int] = {}
    for state in instances.values_list("state", flat=True):
        states[state] = states.get(state, 0) + 1
    requested = max(ended for _cpu, _began, ended in reports) - first
    return n / (done - first), states, requested, sum(cpu for cpu, _b, _e in reports)


def cluster_time(membership, key, nodes: int) -> tuple[float, str, str, dict[str, int]]:
    """Seconds from the `cluster_launch` call to the cluster and all its nodes running (or
    the time-out, or a final state), the cluster's state at the end, a note of the call's own
    seconds and runner CPU, and the nodes' states at the end."""
    started = time.perf_counter()
    cpu = time.process_time()
    cluster = cluster_launch(
        membership=membership,
        name="bench-cluster",
        instance_type="gpu_1x_h100",
        region="us-east-1",
        image=seed.IMAGE,
        nodes=nodes,
        ssh_key_ids=[key.pk],
    )
    requested, requested_cpu = time.perf_counter() - started, time.process_time() - cpu
    deadline = time.monotonic() + TIMEOUT
    nodes_of = Instance.objects.filter(cluster_id=cluster.pk)
    while time.monotonic() < deadline:
        state = Cluster.objects.filter(pk=cluster.pk).values_list("state", flat=True).get()
        if state in (ClusterState.FAILED, ClusterState.TERMINATED, ClusterState.INTERRUPTED):
            break
        if state == ClusterState.RUNNING and not nodes_of.exclude(state=State.RUNNING).exists():
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    states: dict[str, int] = {}
    for node_state in nodes_of.values_list("state", flat=True):
        states[node_state] = states.get(node_state, 0) + 1
    note = f"call {requested:.1f} s ({requested_cpu * 1000:.0f} ms CPU in the runner)"
    return elapsed, state, note, states


def run(results: Results, *, staff, work: Path) -> None:
    launchers = [
        launch_org(staff, "Bench Launch" if p == 0 else f"Bench Launch {p + 1}")[1:]
        for p in range(PRODUCERS)
    ]
    cluster_org, cluster_membership, cluster_key = launch_org(staff, "Bench Cluster")
    simulator = start_simulator(work, name="simulator-launch", catalog=big_fleet(4096))
    worker = Worker(work / "worker.log", simulator)
    try:
        worker.start()
        broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        noop_rate(broker, 20)  # warm the worker's processes
        meter = CpuMeter(worker)
        meter.start()
        baseline = noop_rate(broker, LAUNCHES)
        time.sleep(0.5)  # the last task's acknowledgement comes after its counter
        noop_cpu = meter.stop()
        meter.start()
        assert simulator.process is not None
        simulator_cpu = cpu_seconds(simulator.process.pid)
        rate, states, requested, requested_cpu = launch_rate(launchers, LAUNCHES)
        deadline = time.monotonic() + TIMEOUT  # the e-mails may still be on their way
        while not drained(broker) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the last task's acknowledgement comes after its log line
        cpu = meter.stop()
        simulator_cpu = cpu_seconds(simulator.process.pid) - simulator_cpu
        meter.start()
        cluster_seconds, cluster_state, cluster_call, node_states = cluster_time(
            cluster_membership, cluster_key, CLUSTER_NODES
        )
        cluster_cpu = meter.stop()
    finally:
        worker.stop()
        simulator.stop()
    all_running = states.get(State.RUNNING, 0) == LAUNCHES
    results.add(
        Row(
            section="provisioning",
            name=(
                f"{LAUNCHES} launches from {PRODUCERS} processes (an organization each), "
                "first call to all running"
            ),
            figure=f"{rate:.1f} launches/s",
            baseline=f"{baseline:.1f} no-op tasks/s",
            ratio=rate / baseline,
            target=f"≥ {LAUNCH_TARGET} launches/s",
            met=all_running and rate >= LAUNCH_TARGET,
        )
    )
    results.note(
        f"provisioning: worker prefork concurrency {CONCURRENCY}; {rate / baseline:.2f} of the "
        f"no-op rate; the {LAUNCHES} instance_launch calls ({PRODUCERS} producer processes) "
        f"took {requested:.1f} s until the last returned; {task_times(worker.log_path)}; "
        f"states at the end: {states}"
    )
    launch_ms, worker_ms = requested_cpu * 1000 / LAUNCHES, cpu * 1000 / LAUNCHES
    noop_ms = noop_cpu * 1000 / LAUNCHES
    results.add(
        Row(
            section="provisioning",
            name="CPU per launch, every task of it included (e-mail too), PostgreSQL's not counted",
            figure=(
                f"{launch_ms + worker_ms:.1f} ms: {launch_ms:.1f} in the producers'"
                f" instance_launch, {worker_ms:.1f} in the worker's processes"
                f" ({os.cpu_count()} cores)"
            ),
            baseline=f"a no-op task {noop_ms:.1f} ms in the worker's processes",
            ratio=(launch_ms + worker_ms) / noop_ms if noop_ms else None,
            target="≤ 15 ms",
            met=all_running and launch_ms + worker_ms <= 15,
        )
    )
    results.note(
        f"provisioning: the simulator's process (the backend, not counted above) spent "
        f"{simulator_cpu * 1000 / LAUNCHES:.1f} ms of CPU per launch (its create and reads)"
    )
    cluster_row(results, cluster_seconds, cluster_state, node_states)
    results.note(
        f"provisioning: the {CLUSTER_NODES:,}-node cluster: the cluster_launch {cluster_call}, "
        f"{cluster_cpu:.1f} s CPU in the worker's processes until all ran"
    )


def cluster_row(results: Results, seconds: float, state: str, nodes: dict[str, int]) -> None:
    whole = state == ClusterState.RUNNING and nodes.get(State.RUNNING, 0) == CLUSTER_NODES
    results.add(
        Row(
            section="provisioning",
            name=f"a {CLUSTER_NODES:,}-node cluster, request to all nodes running",
            figure=f"{seconds:.1f} s" + ("" if whole else f" (ended {state}, nodes {nodes})"),
            baseline=f"the target, {CLUSTER_TARGET_SECONDS} s",
            ratio=seconds / CLUSTER_TARGET_SECONDS,
            target="≤ 1",
            met=whole and seconds <= CLUSTER_TARGET_SECONDS,
        )
    )


def task_times(log_path: Path) -> str:
    """Mean run time per task name, from the worker's "succeeded in" lines."""
    times: dict[str, list[float]] = {}
    for match in SUCCEEDED.finditer(log_path.read_text()):
        times.setdefault(match.group(1).rsplit(".", 1)[-1], []).append(float(match.group(2)))
    return ", ".join(
        f"{name} {sum(values) / len(values) * 1000:.0f} ms mean in the worker ({len(values)})"
        for name, values in sorted(times.items())
    )
