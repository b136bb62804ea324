"""The portal on the slurm driver, end to end, against the real Slurm of the session (bin/slurm).

Launches go through the portal's services and Celery tasks with PROVISIONING_BACKEND=slurm.
The tasks run here, in this process, through `InlineWorker`: every task the portal enqueues
(`delay`, `apply_async` with its countdown) waits in a queue that the test drains in order, as a
worker and beat would (reconciliation every few seconds when asked). The rows are committed
(`transaction=True`), so on-commit hooks fire as in production, e-mails included.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from celery.app.task import Task
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from portal.billing.models import UsageInterval
from portal.catalog.models import GpuModel, Image, InstanceType, Price, Region
from portal.instances import services, tasks
from portal.instances.models import Instance, State
from portal.orgs.roles import Role
from portal.provisioning import get_backend
from portal.provisioning.drivers.slurm import API, SlurmBackend
from portal.quotas import services as quota_services
from portal.quotas.models import Kind
from portal.sshkeys.services import sshkey_add
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

from .contract import wait_until
from .slurm_cluster import LocalSlurm, wait_for_free_gpus

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SSH_PORTS = "45000-49999"  # not the driver tests' range: their SSH servers may still linger


# A worker in this process


@dataclass
class Queued:
    due: float
    task: Task
    args: tuple
    kwargs: dict


class InlineWorker:
    """Collects what the portal enqueues and runs it when due, in order."""

    def __init__(self) -> None:
        self.queue: list[Queued] = []
        self.ran: list[str] = []

    def apply_async(self, task, args=None, kwargs=None, countdown=None, eta=None, **options):
        delay = countdown or 0
        if eta is not None:
            delay = max(0.0, (eta - datetime.now(UTC)).total_seconds())
        self.queue.append(Queued(time.monotonic() + delay, task, tuple(args or ()), kwargs or {}))

    def run_due(self) -> bool:
        now = time.monotonic()
        due = [item for item in self.queue if item.due <= now]
        if not due:
            return False
        item = min(due, key=lambda i: i.due)
        self.queue.remove(item)
        self.ran.append(item.task.name.rsplit(".", 1)[-1])
        result = item.task.apply(args=item.args, kwargs=item.kwargs)
        if result.failed():
            raise AssertionError(f"task {item.task.name}{item.args} failed: {result.result!r}")
        return True

    def run_until(
        self,
        condition: Callable[[], bool],
        timeout: float,
        what: str,
        reconcile_every: float | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        reconciled = time.monotonic()
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            if reconcile_every and time.monotonic() - reconciled >= reconcile_every:
                reconciled = time.monotonic()
                self.apply_async(tasks.instances_reconcile)
            if not self.run_due():
                time.sleep(0.1)

    def drain(self) -> None:
        """Run what is due now (and what that enqueues at once)."""
        while self.run_due():
            pass


@pytest.fixture
def worker(monkeypatch) -> InlineWorker:
    inline = InlineWorker()
    monkeypatch.setattr(
        Task,
        "apply_async",
        lambda self, args=None, kwargs=None, **options: inline.apply_async(
            self, args, kwargs, **options
        ),
    )
    return inline


# The portal on the session's Slurm


@pytest.fixture
def slurm_settings(settings, local_slurm: LocalSlurm) -> Iterator[SlurmBackend]:
    settings.PROVISIONING_BACKEND = "slurm"
    settings.SLURM_REST_URL = local_slurm.rest_url
    settings.SLURM_TOKEN_FILE = str(local_slurm.token_file)
    settings.SLURM_JOB_DIR = str(local_slurm.job_dir)
    settings.SLURM_SSH_PORTS = SSH_PORTS
    # A prefix per test: list() (and so reconciliation) sees only this test's jobs.
    settings.SLURM_JOB_PREFIX = f"p{uuid.uuid4().hex[:6]}-"
    settings.PROVISIONING_TIMEOUT = (2.0, 10.0)
    settings.PROVISIONING_BACKOFF = 0.1
    settings.INSTANCE_POLL_INTERVAL = 0.3
    settings.INSTANCE_RETRY_BASE = 0.2
    backend = get_backend()
    assert isinstance(backend, SlurmBackend)
    yield backend
    for machine in backend.list():
        backend.terminate(machine.backend_id)
    wait_for_free_gpus(backend)


@dataclass
class Portal:
    organization: object
    owner: object
    region: Region
    h100: GpuModel
    gpu_2x: InstanceType
    gpu_8x: InstanceType
    image: Image

    @property
    def account(self) -> str:
        return f"bf-{self.organization.slug}"


@pytest.fixture
def portal(slurm_settings, worker) -> Portal:
    """An organization of its own (its own Slurm account), a catalog Slurm's nodes match, and
    a quota of 16 on-demand + 8 preemptible H100s in us-east-1."""
    organization = OrganizationFactory(slug=f"slurm-{uuid.uuid4().hex[:6]}")
    owner = MembershipFactory(organization=organization, role=Role.OWNER)
    region = Region.objects.create(code="us-east-1", name="US East", location="Virginia")
    h100 = GpuModel.objects.create(code="h100", name="NVIDIA H100 80GB", memory_gb=80)
    types = {}
    for count, price in ((2, "4.98"), (8, "19.92")):
        itype = InstanceType.objects.create(
            code=f"gpu_{count}x_h100",
            name=f"{count}x H100 80GB",
            gpu_model=h100,
            gpu_count=count,
            vcpus=26 * count,
            memory_gb=225 * count,
            local_disk_gb=2750 * count,
        )
        itype.regions.set([region])
        Price.objects.create(
            instance_type=itype,
            valid_from=timezone.now() - timedelta(days=1),
            on_demand_hourly=Decimal(price),
            preemptible_hourly=Decimal(price) / 2,
        )
        types[count] = itype
    image = Image.objects.create(code="ubuntu-22.04-cuda-12.4", name="Ubuntu 22.04 + CUDA")
    for kind, limit in ((Kind.ON_DEMAND, 16), (Kind.PREEMPTIBLE, 8)):
        quota_services.quota_limit_set(
            organization=organization,
            region=region,
            gpu_model=h100,
            kind=kind,
            limit=limit,
            reason="test",
        )
    worker.drain()  # the quota mirroring tasks: the organization's Slurm account exists now
    tasks.capacity_refresh.apply()  # what the launch page and the launch check see
    return Portal(organization, owner, region, h100, types[2], types[8], image)


def _keypair(tmp_path: Path, name: str = "customer") -> tuple[Path, str]:
    path = tmp_path / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True
    )
    return path, (tmp_path / f"{name}.pub").read_text().strip()


def _ssh(key: Path, instance: Instance, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(key),
            "-p",
            str(instance.ssh_port),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=10",
            f"{instance.ssh_user}@{instance.ip}",
            command,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=30,
    )


def _launch(portal: Portal, key: str, name: str, itype: InstanceType, **options) -> Instance:
    ssh_key = sshkey_add(membership=portal.owner, name=name, public_key=key, shared=False)
    return services.instance_launch(
        membership=portal.owner,
        name=name,
        instance_type=itype.code,
        region=portal.region.code,
        image=portal.image.code,
        ssh_key_ids=[ssh_key.pk],
        preemptible=options.get("preemptible", False),
        idempotency_key=None,
    )


def _state_is(instance: Instance, state: str) -> Callable[[], bool]:
    def check() -> bool:
        instance.refresh_from_db()
        return instance.state == state

    return check


def test_launch_ssh_in_with_the_launch_key_see_two_gpus_terminate(
    portal: Portal, worker: InlineWorker, local_slurm: LocalSlurm, tmp_path: Path, client
) -> None:
    key, public = _keypair(tmp_path)
    instance = _launch(portal, public, "trainer", portal.gpu_2x)

    worker.run_until(_state_is(instance, State.RUNNING), 60, "the instance to run")
    worker.drain()  # what the transition enqueued: the running e-mail

    assert instance.ip == "127.0.0.1"
    assert instance.ssh_user == "backfill"
    assert instance.ssh_sudo is False  # a Slurm job's user: the page says "without sudo"
    low, high = (int(p) for p in SSH_PORTS.split("-"))
    assert low <= instance.ssh_port <= high
    command = f"ssh -p {instance.ssh_port} backfill@127.0.0.1"
    assert instance.ssh_command == command
    # Charged to the organization's own Slurm account, holding two H100s.
    job = local_slurm.tool("squeue", "-h", "-j", instance.backend_id, "-o", "%a|%b|%T").strip()
    assert job == f"{portal.account}|gres:gpu:h100:2|RUNNING"
    # The running e-mail and the instance's page give the real SSH command.
    (running,) = [m for m in mail.outbox if "trainer" in m.subject]
    assert running.to == [portal.owner.user.email]
    assert command in running.body
    client.force_login(portal.owner.user)
    page = client.get(
        reverse("instances:detail", args=[portal.organization.slug, instance.pk])
    ).content.decode()
    assert command in page

    result = _ssh(key, instance, "echo gpus=$CUDA_VISIBLE_DEVICES")
    assert result.returncode == 0, result.stderr
    gpus = result.stdout.strip().removeprefix("gpus=").split(",")
    assert len(gpus) == 2, result.stdout
    other, _ = _keypair(tmp_path, "someone-else")
    assert _ssh(other, instance, "true").returncode != 0

    services.instance_terminate(membership=portal.owner, instance=instance)
    worker.run_until(_state_is(instance, State.TERMINATED), 60, "the instance to end")

    assert local_slurm.tool("squeue", "-h", "-j", instance.backend_id, "-o", "%T").strip() == ""
    ended = local_slurm.tool("squeue", "-h", "-t", "all", "-j", instance.backend_id, "-o", "%T")
    assert ended.strip() in ("", "CANCELLED")
    assert _ssh(key, instance, "true").returncode != 0


def test_preemptible_instance_interrupted_by_the_operator_stops_billing_at_that_second(
    portal: Portal,
    worker: InlineWorker,
    local_slurm: LocalSlurm,
    slurm_settings: SlurmBackend,
    tmp_path: Path,
) -> None:
    _, public = _keypair(tmp_path)
    instance = _launch(portal, public, "spot", portal.gpu_8x, preemptible=True)
    worker.run_until(_state_is(instance, State.RUNNING), 60, "the instance to run")
    worker.drain()
    assert local_slurm.tool("squeue", "-h", "-j", instance.backend_id, "-o", "%q").strip() == "low"
    mail.outbox.clear()

    # The operator's own work in QOS high takes both H100 nodes (ours is on one of them).
    operator_job = slurm_settings.call(
        "POST",
        f"{API}/job/submit",
        {
            "script": "#!/bin/bash\nsleep 600\n",
            "job": {
                "name": "operator-training",
                "partition": "us-east-1",
                "nodes": "2",
                "gres": "gpu:h100:8",
                "qos": "high",
                "account": "operator",
                "current_working_directory": "/tmp",
                "environment": {"PATH": "/usr/bin:/bin"},
            },
        },
        user="slurm",
    )["job_id"]
    try:
        # Beat's reconciliation notices the notice, then the interruption.
        worker.run_until(
            _state_is(instance, State.INTERRUPTED), 90, "the interruption", reconcile_every=2
        )
        worker.drain()  # the e-mails the transition enqueued

        def slurm_job() -> dict:
            job = slurm_settings.call("GET", f"{API}/job/{instance.backend_id}", user="slurm")
            return job["jobs"][0]

        # The portal may have seen it COMPLETING (already interrupted for it); Slurm's record
        # of the end is final once the job is PREEMPTED.
        wait_until(lambda: slurm_job()["job_state"] == "PREEMPTED", 30, "PREEMPTED")
        preempted = slurm_job()
    finally:
        slurm_settings.call("DELETE", f"{API}/job/{operator_job}", user="slurm")

    ended = datetime.fromtimestamp(preempted["end_time"], UTC)
    # Billing stopped at the second Slurm took the GPUs back, not when the portal noticed.
    event = instance.events.get(to_state=State.INTERRUPTED)
    assert event.at == ended
    (usage,) = UsageInterval.objects.filter(instance=instance)
    assert usage.end == ended
    # (usage is kept in whole seconds)
    assert usage.start == instance.events.get(to_state=State.RUNNING).at.replace(microsecond=0)
    instance.refresh_from_db()
    assert instance.running_since is None
    assert "Reclaimed by the operator" in instance.state_reason
    # The owner was told of the notice (reconciliation saw the grace time run: 3 s here, and
    # slurmctld ends it late) and of the interruption.
    subjects = [m.subject for m in mail.outbox if m.to == [portal.owner.user.email]]
    assert "[Backfill] spot was interrupted" in subjects, subjects
    assert any(s.startswith("[Backfill] spot will be interrupted at") for s in subjects), subjects


def _grptres(local_slurm: LocalSlurm, account: str) -> set[str]:
    shown = local_slurm.tool(
        "sacctmgr", "-nP", "show", "assoc", "where", f"account={account}", "format=user,grptres"
    )
    limits = dict(line.split("|") for line in shown.split())
    return set(filter(None, limits[""].split(",")))


def test_approving_a_quota_request_changes_the_slurm_accounts_limit(
    portal: Portal, worker: InlineWorker, local_slurm: LocalSlurm
) -> None:
    # The portal's quota so far: 16 on-demand + 8 preemptible H100s, mirrored at setup.
    assert _grptres(local_slurm, portal.account) == {"gres/gpu:h100=24"}

    request = quota_services.quota_request_submit(
        membership=portal.owner,
        region=portal.region,
        gpu_model=portal.h100,
        kind=Kind.ON_DEMAND,
        requested_limit=40,
        justification="A bigger run for two weeks.",
    )
    worker.drain()
    assert _grptres(local_slurm, portal.account) == {"gres/gpu:h100=24"}  # not yet approved

    staff = UserFactory(email=f"ops-{uuid.uuid4().hex[:6]}@backfill.example", is_staff=True)
    quota_services.quota_request_decide(
        quota_request=request,
        decision=quota_services.Decision.APPROVE,
        granted_limit=32,
        message="32 for now.",
        decided_by=staff,
    )
    assert "quota_mirror" in [item.task.name.rsplit(".", 1)[-1] for item in worker.queue]
    worker.drain()

    assert _grptres(local_slurm, portal.account) == {"gres/gpu:h100=40"}  # 32 + 8 preemptible

    # Limits of other models follow without undoing this one (slurmdbd replaces the whole
    # list; each run sends every model); a model Slurm does not track is left out.
    eu_west = Region.objects.create(code="eu-west-1", name="EU West", location="Dublin")
    for code in ("a100", "rtx9000"):
        model = GpuModel.objects.create(code=code, name=code.upper(), memory_gb=80)
        quota_services.quota_limit_set(
            organization=portal.organization,
            region=eu_west,
            gpu_model=model,
            kind=Kind.PREEMPTIBLE,
            limit=8,
            reason="test",
        )
    worker.drain()
    assert _grptres(local_slurm, portal.account) == {"gres/gpu:h100=40", "gres/gpu:a100=8"}


def test_an_internal_job_waiting_for_a_customers_gpus_makes_a_reclaim_order_on_slurm(
    portal: Portal,
    worker: InlineWorker,
    slurm_settings: SlurmBackend,
    settings,
    tmp_path: Path,
) -> None:
    from portal.reclaims.models import OrderState, ReclaimOrder, ReclaimPolicy

    settings.RECLAIM_MIN_NOTICE_SECONDS = 5
    ReclaimPolicy.objects.update_or_create(pk=1, defaults={"notice_seconds": 10})
    key, public = _keypair(tmp_path)
    _, other = _keypair(tmp_path, "server")
    spot = _launch(portal, public, "spot", portal.gpu_8x, preemptible=True)
    on_demand = _launch(portal, other, "serving", portal.gpu_8x)
    worker.run_until(
        lambda: _state_is(spot, State.RUNNING)() and _state_is(on_demand, State.RUNNING)(),
        60,
        "both instances to run",
    )
    worker.drain()
    mail.outbox.clear()

    # The operator's own work in QOS internal: 8 GPUs; both nodes are taken, so it waits.
    internal = slurm_settings.call(
        "POST",
        f"{API}/job/submit",
        {
            "script": "#!/bin/bash\nsleep 600\n",
            "job": {
                "name": "operator-eval",
                "partition": "us-east-1",
                "gres": "gpu:h100:8",
                "qos": "internal",
                "account": "operator",
                "current_working_directory": "/tmp",
                "environment": {"PATH": "/usr/bin:/bin"},
            },
        },
        user="slurm",
    )["job_id"]

    def internal_state() -> str:
        return slurm_settings.call("GET", f"{API}/job/{internal}", user="slurm")["jobs"][0][
            "job_state"
        ]

    try:
        # Beat's capacity refresh: the shortfall becomes a reclaim order (twice: one order).
        wait_until(
            lambda: any(c.shortfall_gpus == 8 for c in slurm_settings.capacity()), 30, "shortfall"
        )
        tasks.capacity_refresh.apply()
        tasks.capacity_refresh.apply()
        (order,) = ReclaimOrder.objects.all()
        assert (order.gpus, order.returnable_gpus) == (8, 8)
        assert [v.instance_id for v in order.victims.all()] == [spot.pk]  # never on-demand
        worker.drain()  # the task that tells Slurm
        spot.refresh_from_db()
        assert spot.reclaim_at == order.end_at
        assert any("will be interrupted at" in m.subject for m in mail.outbox)
        # Inside the machine, during the notice: the time in ~/.backfill/interruption.
        expected = f"{spot.reclaim_at:%Y-%m-%dT%H:%M:%S}Z"
        wait_until(
            lambda: _ssh(key, spot, "cat ~/.backfill/interruption").stdout.strip() == expected,
            8,
            "the interruption file",
        )
        assert internal_state() == "PENDING"
        # At the end of the notice the job ends; the portal records an interruption.
        worker.run_until(
            _state_is(spot, State.INTERRUPTED), 60, "the interruption", reconcile_every=2
        )
        spot.refresh_from_db()
        assert spot.terminated_at == spot.reclaim_at
        wait_until(lambda: internal_state() == "RUNNING", 30, "the internal job to start")
        order.refresh_from_db()
        assert (order.state, order.met) == (OrderState.DONE, True)
        on_demand.refresh_from_db()
        assert on_demand.state == State.RUNNING
    finally:
        slurm_settings.call("DELETE", f"{API}/job/{internal}", user="slurm")
