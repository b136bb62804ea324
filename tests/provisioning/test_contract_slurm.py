"""The provisioning contract, and what only Slurm does, against a real Slurm (bin/slurm).

Each test gets a driver with a job-name prefix of its own, so that `list()` starts empty, and
cancels what it made afterwards, waiting until Slurm has given the GPUs back.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from portal.provisioning import (
    FINAL_STATES,
    AuthenticationError,
    InvalidState,
    MachineState,
    PermanentError,
    TransientError,
    get_backend,
)
from portal.provisioning.drivers.slurm import SlurmBackend, job_script
from portal.provisioning.drivers.slurm import accounts as slurm_accounts

from .contract import (
    BackendContract,
    ClusterContract,
    QuotaMirroringContract,
    ReclaimContract,
    VolumeContract,
    wait_for_state,
    wait_until,
)
from .slurm_cluster import LocalSlurm, wait_for_free_gpus

pytestmark = pytest.mark.slow

SSH_PORTS = (40000, 44999)


def make_driver(cluster: LocalSlurm, prefix: str | None = None, **kwargs) -> SlurmBackend:
    prefix = prefix or f"t{uuid.uuid4().hex[:8]}-"
    options = {
        "token_file": cluster.token_file,
        "job_dir": str(cluster.job_dir),
        "prefix": prefix,
        # A volume store of the test's own on the cluster's (here: the host's) storage.
        "volume_root": str(cluster.dir / "volumes" / prefix.rstrip("-")),
        "volume_capacity_gb": 1000,
        "ssh_ports": SSH_PORTS,
        "timeout": (2.0, 10.0),
        "backoff": 0.1,
        **kwargs,
    }
    return SlurmBackend(cluster.rest_url, **options)


def clean_up(driver: SlurmBackend) -> None:
    """Cancel this test's jobs and wait until none holds GPUs any more."""
    for machine in driver.list():
        driver.terminate(machine.backend_id)
    wait_until(
        lambda: all(m.state in FINAL_STATES for m in driver.list()),
        30,
        "the test's jobs to end",
    )
    wait_for_free_gpus(driver)


@pytest.fixture
def slurm_driver(local_slurm: LocalSlurm) -> Iterator[SlurmBackend]:
    driver = make_driver(local_slurm)
    yield driver
    clean_up(driver)


class TestSlurmContract(QuotaMirroringContract, ClusterContract, ReclaimContract, VolumeContract):
    STATE_TIMEOUT = 40.0
    REGION_WITHOUT_TYPE = "eu-west-1"  # A100 only
    RECLAIM_NOTICE = 3.0  # the job's script ends itself to the second

    @pytest.fixture
    def backend(self, slurm_driver: SlurmBackend) -> SlurmBackend:
        return slurm_driver

    @pytest.fixture
    def internal_demand(self, slurm_driver: SlurmBackend) -> Iterator:
        """The operator's own work: 1-GPU jobs in QOS internal (which preempts nothing)."""
        jobs: list[int] = []

        def want(gpus: int) -> None:
            jobs.extend(
                _operator_job(slurm_driver, f"operator-{n}", gpus=1, qos="internal")
                for n in range(gpus)
            )

        yield want
        for job in jobs:
            slurm_driver.call("DELETE", f"/slurm/v0.0.38/job/{job}", user="slurm")


# What only Slurm does


def test_get_backend_builds_the_slurm_driver(local_slurm: LocalSlurm) -> None:
    from types import SimpleNamespace

    settings = SimpleNamespace(
        PROVISIONING_BACKEND="slurm",
        SLURM_REST_URL=local_slurm.rest_url,
        SLURM_TOKEN_FILE=str(local_slurm.token_file),
        SLURM_JOB_DIR=str(local_slurm.job_dir),
        PROVISIONING_TIMEOUT=(2, 5),
    )

    backend = get_backend(settings)

    assert isinstance(backend, SlurmBackend)
    assert backend.timeout == (2, 5)
    assert {c.region for c in backend.capacity()} == {"us-east-1", "eu-west-1"}


def test_capacity_per_gpu_model_and_region(slurm_driver: SlurmBackend) -> None:
    entries = {(c.region, c.instance_type): c for c in slurm_driver.capacity()}

    assert entries["us-east-1", "gpu_8x_h100"].total_gpus == 16
    assert entries["us-east-1", "gpu_8x_h100"].free_instances == 2
    assert entries["us-east-1", "gpu_1x_h100"].gpu_model == "h100"
    assert entries["eu-west-1", "gpu_8x_a100"].total_gpus == 8
    assert ("eu-west-1", "gpu_8x_h100") not in entries


def _key(tmp_path: Path, name: str) -> tuple[Path, str]:
    path = tmp_path / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True
    )
    return path, (tmp_path / f"{name}.pub").read_text().strip()


def _ssh(key: Path, machine, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(key),
            "-p",
            str(machine.ssh_port),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "IdentitiesOnly=yes",
            f"{machine.ssh_user}@{machine.ip}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_ssh_into_an_instance_with_its_key_and_see_its_gpus(
    slurm_driver: SlurmBackend, local_slurm: LocalSlurm, tmp_path: Path
) -> None:
    key, public = _key(tmp_path, "customer")
    other, other_public = _key(tmp_path, "someone-else")
    backend_id = slurm_driver.create(
        request_id="req-ssh",
        instance_type="gpu_2x_h100",
        region="us-east-1",
        image="ubuntu-22.04-cuda-12",
        ssh_keys=[public],
        name="trainer",
        preemptible=False,
    )
    neighbour = slurm_driver.create(
        request_id="req-neighbour",
        instance_type="gpu_1x_h100",
        region="us-east-1",
        image="ubuntu-22.04-cuda-12",
        ssh_keys=[other_public],
        name="neighbour",
        preemptible=False,
    )
    machine = wait_for_state(slurm_driver, backend_id, MachineState.RUNNING, 40)
    wait_for_state(slurm_driver, neighbour, MachineState.RUNNING, 40)

    assert machine.ip == "127.0.0.1"
    assert machine.ssh_port and SSH_PORTS[0] <= machine.ssh_port <= SSH_PORTS[1]
    assert str(machine.ssh_port) in machine.detail
    result = _ssh(key, machine, "echo gpus=$CUDA_VISIBLE_DEVICES; cat ~/.ssh/authorized_keys")
    assert result.returncode == 0, result.stderr
    gpus = result.stdout.splitlines()[0].removeprefix("gpus=").split(",")
    assert len(gpus) == 2
    # Exactly the instance's keys: not the neighbour's, though both run as the same Unix user.
    assert result.stdout.splitlines()[1:] == [public]
    assert _ssh(other, machine, "true").returncode != 0

    # A stop keeps the job (and so its keys); a start brings SSH back.
    slurm_driver.stop(backend_id)
    wait_for_state(slurm_driver, backend_id, MachineState.STOPPED, 40)
    assert "gres/gpu" not in local_slurm.tool("squeue", "-h", "-j", backend_id, "-o", "%b %T")
    slurm_driver.start(backend_id)
    machine = wait_for_state(slurm_driver, backend_id, MachineState.RUNNING, 40)
    assert _ssh(key, machine, "true").returncode == 0

    slurm_driver.terminate(backend_id)
    wait_for_state(slurm_driver, backend_id, MachineState.TERMINATED, 40)
    state = local_slurm.tool("squeue", "-h", "-t", "all", "-j", backend_id, "-o", "%T")
    assert state.strip() in ("", "CANCELLED")
    assert _ssh(key, machine, "true").returncode != 0


@pytest.fixture
def stale_cluster_state(local_slurm: LocalSlurm) -> Iterator[None]:
    """What the cluster jobs of an earlier Slurm left in the job user's home: a Slurm started
    afresh numbers its jobs from 1 again, so the next cluster's job id is among these."""
    user = pwd.getpwnam("backfill")
    root = Path(user.pw_dir) / ".backfill"
    planted = []
    for job_id in range(1, 400):
        run = root / str(job_id) / "0"
        if run.exists():
            continue
        run.mkdir(parents=True)
        for node in (0, 1):
            (run / f"port.{node}").write_text("1\n")  # nothing listens on port 1
        for path in (root, root / str(job_id), run, *run.iterdir()):
            os.chown(path, user.pw_uid, user.pw_gid)
        planted.append(root / str(job_id))
    yield
    for path in planted:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.usefixtures("stale_cluster_state")
def test_a_two_node_cluster_is_one_job_with_an_ssh_server_named_on_each_node(
    slurm_driver: SlurmBackend, local_slurm: LocalSlurm, tmp_path: Path
) -> None:
    key, public = _key(tmp_path, "trainer")
    machines = slurm_driver.cluster_create(
        request_id="req-cluster",
        instance_type="gpu_8x_h100",
        region="us-east-1",
        image="ubuntu-22.04-cuda-12",
        nodes=2,
        ssh_keys=[public],
        volumes=[],
        preemptible=False,
        name="llm",
    )
    job_id = machines[0].backend_id.split(".")[0]
    assert [m.backend_id for m in machines] == [f"{job_id}.0", f"{job_id}.1"]
    # One multi-node job holding 8 GPUs on each of the two nodes.
    squeue = local_slurm.tool("squeue", "-h", "-j", job_id, "-o", "%D %b")
    assert squeue.split()[0] == "2" and "h100:8" in squeue

    running = [
        wait_for_state(slurm_driver, m.backend_id, MachineState.RUNNING, 40) for m in machines
    ]
    head, worker = running
    assert head.ip == "127.0.0.1" and worker.ip is None
    assert head.ssh_port != worker.ssh_port
    assert SSH_PORTS[0] <= head.ssh_port <= SSH_PORTS[1]  # its own servers, not a stale report

    seen = {}
    for machine in running:
        reach = replace(machine, ip=machine.private_ip)  # the worker is reached privately
        result = _ssh(key, reach, "hostname; cat /etc/hosts; echo gpus=$CUDA_VISIBLE_DEVICES")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        seen[machine.name] = lines[0]
        assert lines[1:3] == head.hosts.splitlines()  # the hosts file lists every node
    assert seen == {"llm-0": "llm-0", "llm-1": "llm-1"}  # different host names

    slurm_driver.terminate(worker.backend_id)  # a node's terminate ends the whole job
    for machine in running:
        wait_for_state(slurm_driver, machine.backend_id, MachineState.TERMINATED, 40)


def test_a_file_written_over_ssh_on_a_volume_is_there_on_the_next_instance(
    slurm_driver: SlurmBackend, tmp_path: Path
) -> None:
    """The issue's test on the real Slurm: write in one instance, terminate it, launch another
    with the volume, read it back; what was written outside the volume is gone."""
    key, public = _key(tmp_path, "vol")
    volume_id = slurm_driver.volume_create(
        request_id="vreq-ssh", region="us-east-1", size_gb=10, name="datasets"
    )
    volume = slurm_driver.volume_get(volume_id)
    assert volume.mount_path == "~/data/datasets"
    launch = {
        "instance_type": "gpu_1x_h100",
        "region": "us-east-1",
        "image": "ubuntu",
        "ssh_keys": [public],
        "preemptible": False,
        "volumes": [volume_id],
    }
    first = slurm_driver.create(request_id="req-writer", name="writer", **launch)
    machine = wait_for_state(slurm_driver, first, MachineState.RUNNING, 40)
    wait_until(lambda: _ssh(key, machine, "true").returncode == 0, 20, "SSH on the writer")
    wrote = _ssh(
        key,
        machine,
        "echo epoch-7 > ~/data/datasets/weights.txt && echo scratch > ~/scratch-$SLURM_JOB_ID"
        " && ls -ld ~/data/datasets && stat -c %U ~/data/datasets/weights.txt",
    )
    assert wrote.returncode == 0, wrote.stderr
    assert "backfill" in wrote.stdout  # written as the job's user, on the volume
    assert slurm_driver.volume_get(volume_id).attached_to == (first,)
    with pytest.raises(InvalidState):
        slurm_driver.volume_delete(volume_id)

    slurm_driver.terminate(first)
    wait_for_state(slurm_driver, first, MachineState.TERMINATED, 40)
    assert slurm_driver.volume_get(volume_id).attached_to == ()
    second = slurm_driver.create(request_id="req-reader", name="reader", **launch)
    machine = wait_for_state(slurm_driver, second, MachineState.RUNNING, 40)
    wait_until(lambda: _ssh(key, machine, "true").returncode == 0, 20, "SSH on the reader")
    read = _ssh(key, machine, "cat ~/data/datasets/weights.txt")
    assert (read.returncode, read.stdout) == (0, "epoch-7\n"), read.stderr
    # Another instance's view: a volume it was not given is not mounted there.
    other = slurm_driver.create(request_id="req-other", name="other", **{**launch, "volumes": []})
    machine = wait_for_state(slurm_driver, other, MachineState.RUNNING, 40)
    wait_until(lambda: _ssh(key, machine, "true").returncode == 0, 20, "SSH on the other")
    assert _ssh(key, machine, "cat ~/data/datasets/weights.txt").returncode != 0


def test_reboot_ends_the_instances_processes(slurm_driver: SlurmBackend, tmp_path: Path) -> None:
    key, public = _key(tmp_path, "rebooter")
    backend_id = slurm_driver.create(
        request_id="req-reboot",
        instance_type="gpu_1x_h100",
        region="us-east-1",
        image="x",
        ssh_keys=[public],
        name="rebooter",
        preemptible=False,
    )
    machine = wait_for_state(slurm_driver, backend_id, MachineState.RUNNING, 40)
    started = _ssh(key, machine, "nohup sleep 600 >/dev/null 2>&1 & echo $!")
    assert started.returncode == 0, started.stderr
    pid = started.stdout.strip()

    slurm_driver.reboot(backend_id)
    time.sleep(1)
    machine = wait_for_state(slurm_driver, backend_id, MachineState.RUNNING, 40)
    wait_until(lambda: _ssh(key, machine, "true").returncode == 0, 20, "SSH after the reboot")

    # Gone, or a zombie that nobody reaps (the node here is a container whose init does not).
    assert _ssh(key, machine, f"ps -o stat= -p {pid} | grep -qv Z").returncode != 0


def test_preemptible_instance_is_interrupted_by_the_operators_high_qos_job(
    slurm_driver: SlurmBackend, local_slurm: LocalSlurm
) -> None:
    ids = [
        slurm_driver.create(
            request_id=f"req-spot-{n}",
            instance_type="gpu_8x_h100",
            region="us-east-1",
            image="x",
            ssh_keys=BackendContract.SSH_KEYS,
            name=f"spot-{n}",
            preemptible=True,
        )
        for n in range(2)
    ]
    for backend_id in ids:
        assert wait_for_state(slurm_driver, backend_id, MachineState.RUNNING, 40).preemptible

    # The operator's own work: 8 GPUs in QOS high, submitted as the SlurmUser.
    operator_job = slurm_driver.call(
        "POST",
        "/slurm/v0.0.38/job/submit",
        {
            "script": "#!/bin/bash\nsleep 600\n",
            "job": {
                "name": "operator-training",
                "partition": "us-east-1",
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
        # Slurm announces the reclaim (grace time 3 s): still running, with reclaim_at.
        def announced():
            return [m for m in slurm_driver.list() if m.reclaim_at is not None]

        wait_until(lambda: bool(announced()), 20, "a reclaim notice")
        noticed = announced()[0]
        assert noticed.state == MachineState.RUNNING
        # slurmctld ends a grace time on its periodic check (every 30 s): at or after the notice.
        interrupted = wait_for_state(slurm_driver, noticed.backend_id, MachineState.INTERRUPTED, 60)
        assert interrupted.reclaim_at is not None
        assert interrupted.reclaim_at >= noticed.reclaim_at
        assert "preempted" in interrupted.detail
        other = next(i for i in ids if i != noticed.backend_id)
        assert slurm_driver.get(other).state == MachineState.RUNNING
    finally:
        slurm_driver.call("DELETE", f"/slurm/v0.0.38/job/{operator_job}", user="slurm")


def test_account_over_its_gpu_limit_waits_for_capacity(slurm_driver: SlurmBackend) -> None:
    org = f"org{uuid.uuid4().hex[:6]}"
    slurm_accounts.set_gpu_limit(org, "h100", 1, backend=slurm_driver)

    first = slurm_driver.create(
        request_id="req-in-quota",
        instance_type="gpu_1x_h100",
        region="us-east-1",
        image="x",
        ssh_keys=BackendContract.SSH_KEYS,
        name="fits",
        preemptible=False,
        account=org,
    )
    second = slurm_driver.create(
        request_id="req-over-quota",
        instance_type="gpu_1x_h100",
        region="us-east-1",
        image="x",
        ssh_keys=BackendContract.SSH_KEYS,
        name="over",
        preemptible=False,
        account=org,
    )

    wait_for_state(slurm_driver, first, MachineState.RUNNING, 40)
    wait_until(
        lambda: slurm_driver.get(second).detail == "waiting for capacity (AssocGrpGRES)",
        20,
        "AssocGrpGRES",
    )
    assert slurm_driver.get(second).state == MachineState.PROVISIONING

    # Raising the limit lets it run: slurmdbd passes the limit to slurmctld, whose backfill pass
    # (every 5 s here) starts the job; once in a full suite that took over 40 s, so the wait
    # covers slurmctld's full scheduling cycle (60 s) too.
    slurm_accounts.set_gpu_limit(org, "h100", 2, backend=slurm_driver)
    wait_for_state(slurm_driver, second, MachineState.RUNNING, 90)


def test_quota_mirroring_changes_the_accounts_grptres(
    slurm_driver: SlurmBackend, local_slurm: LocalSlurm
) -> None:
    org = f"org{uuid.uuid4().hex[:6]}"
    account = slurm_accounts.ensure_account(org, backend=slurm_driver)
    assert slurm_accounts.ensure_account(org, backend=slurm_driver) == account == f"bf-{org}"
    assert slurm_accounts.gpu_limits(org, backend=slurm_driver) == {}

    slurm_accounts.set_gpu_limit(org, "h100", 4, backend=slurm_driver)
    slurm_accounts.set_gpu_limit(org, "a100", 8, backend=slurm_driver)
    assert slurm_accounts.gpu_limits(org, backend=slurm_driver) == {"h100": 4, "a100": 8}
    slurm_accounts.set_gpu_limit(org, "h100", 16, backend=slurm_driver)

    shown = local_slurm.tool(
        "sacctmgr", "-nP", "show", "assoc", "where", f"account={account}", "format=user,grptres"
    )
    grptres = dict(line.split("|") for line in shown.split())
    assert set(grptres[""].split(",")) == {"gres/gpu:h100=16", "gres/gpu:a100=8"}
    assert grptres["backfill"] == ""

    slurm_accounts.set_gpu_limit(org, "a100", None, backend=slurm_driver)
    assert slurm_accounts.gpu_limits(org, backend=slurm_driver) == {"h100": 16}
    with pytest.raises(PermanentError):
        slurm_accounts.set_gpu_limit(org, "h100", -2, backend=slurm_driver)


def test_request_larger_than_any_node_is_refused_with_slurms_message(
    slurm_driver: SlurmBackend,
) -> None:
    with pytest.raises(PermanentError, match="Requested node configuration is not available"):
        slurm_driver.create(
            request_id="req-huge",
            instance_type="gpu_16x_h100",
            region="us-east-1",
            image="x",
            ssh_keys=BackendContract.SSH_KEYS,
            name="huge",
            preemptible=False,
        )
    assert slurm_driver.list() == []


def test_a_new_organizations_account_is_made_for_its_first_job(
    slurm_driver: SlurmBackend, local_slurm: LocalSlurm
) -> None:
    org = f"new{uuid.uuid4().hex[:6]}"
    backend_id = slurm_driver.create(
        request_id="req-first",
        instance_type="gpu_1x_h100",
        region="us-east-1",
        image="x",
        ssh_keys=BackendContract.SSH_KEYS,
        name="first",
        preemptible=False,
        account=org,
    )
    wait_for_state(slurm_driver, backend_id, MachineState.RUNNING, 40)
    assert local_slurm.tool("squeue", "-h", "-j", backend_id, "-o", "%a").strip() == f"bf-{org}"


@pytest.mark.parametrize(
    ("instance_type", "region"), [("m5.large", "us-east-1"), ("gpu_1x_h100", "mars-1")]
)
def test_unknown_type_or_region_is_permanent(
    slurm_driver: SlurmBackend, instance_type: str, region: str
) -> None:
    with pytest.raises(PermanentError):
        slurm_driver.create(
            request_id="req-bad",
            instance_type=instance_type,
            region=region,
            image="x",
            ssh_keys=BackendContract.SSH_KEYS,
            name="bad",
            preemptible=False,
        )


def test_rest_api_down_is_transient(local_slurm: LocalSlurm) -> None:
    with socket_closed() as port:
        driver = make_driver(local_slurm, retries=1, backoff=0)
        driver.base_url = f"http://127.0.0.1:{port}"
        with pytest.raises(TransientError, match="unreachable"):
            driver.list()


def test_slurmctld_down_is_transient_and_jobs_survive_a_restart(
    slurm_driver: SlurmBackend, local_slurm: LocalSlurm
) -> None:
    backend_id = slurm_driver.create(
        request_id="req-survivor",
        instance_type="gpu_1x_h100",
        region="us-east-1",
        image="x",
        ssh_keys=BackendContract.SSH_KEYS,
        name="survivor",
        preemptible=False,
    )
    wait_for_state(slurm_driver, backend_id, MachineState.RUNNING, 40)
    local_slurm.stop_daemon("slurmctld")
    try:
        slurm_driver.retries = 0
        with pytest.raises(TransientError):
            slurm_driver.get(backend_id)
        with pytest.raises(TransientError):
            slurm_driver.capacity()
    finally:
        local_slurm.start()
        slurm_driver.retries = 2
    wait_until(lambda: slurm_driver.get(backend_id).state == MachineState.RUNNING, 30, "ctld back")


def test_expired_or_wrong_token_is_an_authentication_error(local_slurm: LocalSlurm) -> None:
    short = local_slurm.token(1)
    time.sleep(2.5)
    # Well formed and not expired, but signed with another key (a revoked or foreign token).
    foreign = _jwt({"exp": int(time.time()) + 3600, "iat": int(time.time()), "sun": "slurm"})
    for token, why in ((short, "expired"), ("not-a-token", "not a JWT"), (foreign, "refused")):
        driver = SlurmBackend(local_slurm.rest_url, token=token, retries=0)
        with pytest.raises(AuthenticationError, match=why):
            driver.list()
        with pytest.raises(AuthenticationError):
            driver.capacity()


def _jwt(claims: dict) -> str:
    import base64
    import hashlib
    import hmac
    import json

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = part(json.dumps(claims).encode())
    signature = hmac.new(b"not slurm's key", f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(signature)}"


def test_token_file_is_read_again_when_it_changes(local_slurm: LocalSlurm, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("expired\n")
    driver = make_driver(local_slurm, token_file=token_file, retries=0)
    with pytest.raises(AuthenticationError):
        driver.list()

    token_file.write_text(local_slurm.token(600) + "\n")
    import os

    os.utime(token_file, (time.time() + 5, time.time() + 5))
    assert driver.list() == []


def test_the_job_script_carries_only_the_keys_given() -> None:
    script = job_script(["ssh-ed25519 AAAA one", "ssh-rsa BBBB two"], (20000, 20010))

    assert "ssh-ed25519 AAAA one\nssh-rsa BBBB two\nBACKFILL_KEYS" in script
    assert "shuf -i 20000-20010" in script
    with pytest.raises(PermanentError):
        SlurmBackend("http://x", token="t").create(
            request_id="r",
            instance_type="gpu_1x_h100",
            region="us-east-1",
            image="x",
            ssh_keys=["ssh-ed25519 AAAA\nmalicious"],
            name="n",
            preemptible=False,
        )


class socket_closed:
    """A local port with nothing listening."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        return self.port

    def __exit__(self, *exc) -> None:
        return None


def _operator_job(driver: SlurmBackend, name: str, gpus: int = 8, qos: str = "high") -> int:
    """The operator's own work: GPUs in an internal QOS, submitted as the SlurmUser."""
    return driver.call(
        "POST",
        "/slurm/v0.0.38/job/submit",
        {
            "script": "#!/bin/bash\nsleep 600\n",
            "job": {
                "name": name,
                "partition": "us-east-1",
                "gres": f"gpu:h100:{gpus}",
                "qos": qos,
                "account": "operator",
                "current_working_directory": "/tmp",
                "environment": {"PATH": "/usr/bin:/bin"},
            },
        },
        user="slurm",
    )["job_id"]


def test_capacity_reports_the_operators_jobs_in_the_internal_qos_and_the_shortfall(
    slurm_driver: SlurmBackend,
) -> None:
    customer = slurm_driver.create(
        request_id="req-od",
        instance_type="gpu_2x_h100",
        region="us-east-1",
        image="x",
        ssh_keys=BackendContract.SSH_KEYS,
        name="od",
        preemptible=False,
    )
    wait_for_state(slurm_driver, customer, MachineState.RUNNING, 40)
    jobs = [_operator_job(slurm_driver, f"operator-{n}") for n in range(2)]
    try:
        # One 8-GPU job runs on the free node; the other waits for GPUs the customer holds.
        def entry():
            return next(
                c
                for c in slurm_driver.capacity()
                if (c.region, c.instance_type) == ("us-east-1", "gpu_1x_h100")
            )

        wait_until(lambda: entry().internal_gpus == 8 and entry().shortfall_gpus == 8, 30)
        now = entry()
        assert now.customer_gpus == 2
        assert now.total_gpus == 16
        # The driver reports it; nothing of the customer's is touched by that report.
        assert slurm_driver.get(customer).state == MachineState.RUNNING
    finally:
        for job in jobs:
            slurm_driver.call("DELETE", f"/slurm/v0.0.38/job/{job}", user="slurm")


def test_a_portal_reclaim_signals_the_job_writes_the_file_ends_it_and_internal_work_starts(
    slurm_driver: SlurmBackend, tmp_path: Path
) -> None:
    key, public = _key(tmp_path, "spot-user")
    fill = [
        slurm_driver.create(
            request_id=f"req-fill-{n}",
            instance_type="gpu_8x_h100",
            region="us-east-1",
            image="x",
            ssh_keys=[public],
            name=f"fill-{n}",
            preemptible=n == 0,
        )
        for n in range(2)
    ]
    spot = wait_for_state(slurm_driver, fill[0], MachineState.RUNNING, 40)
    wait_for_state(slurm_driver, fill[1], MachineState.RUNNING, 40)
    internal = _operator_job(slurm_driver, "operator-eval", gpus=8, qos="internal")
    try:
        # The operator's work waits: a shortfall the portal sees; Slurm preempts nothing.
        wait_until(
            lambda: any(
                c.shortfall_gpus == 8 for c in slurm_driver.capacity() if c.region == "us-east-1"
            ),
            30,
            "the shortfall",
        )
        assert slurm_driver.get(spot.backend_id).state == MachineState.RUNNING

        at = datetime.now(UTC) + timedelta(seconds=8)
        slurm_driver.reclaim(spot.backend_id, at)
        announced = slurm_driver.get(spot.backend_id)
        assert announced.reclaim_at is not None and announced.state == MachineState.RUNNING
        # Inside the machine, during the notice: the time in ~/.backfill/interruption.
        expected = f"{announced.reclaim_at:%Y-%m-%dT%H:%M:%S}Z"
        wait_until(
            lambda: _ssh(key, spot, "cat ~/.backfill/interruption").stdout.strip() == expected,
            6,
            "the interruption file",
        )
        ended = wait_for_state(slurm_driver, spot.backend_id, MachineState.INTERRUPTED, 30)
        assert datetime.now(UTC) >= announced.reclaim_at
        assert ended.reclaim_at == announced.reclaim_at
        assert "reclaimed by the operator" in ended.detail
        # The operator's job gets the GPUs; the on-demand neighbour runs on.
        wait_until(
            lambda: (
                slurm_driver.call("GET", f"/slurm/v0.0.38/job/{internal}", user="slurm")["jobs"][0][
                    "job_state"
                ]
                == "RUNNING"
            ),
            30,
            "the internal job to start",
        )
        assert slurm_driver.get(fill[1]).state == MachineState.RUNNING
    finally:
        slurm_driver.call("DELETE", f"/slurm/v0.0.38/job/{internal}", user="slurm")
