"""The provisioning contract, and what only Slurm does, against a real Slurm (bin/slurm).

Each test gets a driver with a job-name prefix of its own, so that `list()` starts empty, and
cancels what it made afterwards, waiting until Slurm has given the GPUs back.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from portal.provisioning import (
    FINAL_STATES,
    AuthenticationError,
    MachineState,
    PermanentError,
    TransientError,
    get_backend,
)
from portal.provisioning.drivers.slurm import SlurmBackend, job_script
from portal.provisioning.drivers.slurm import accounts as slurm_accounts

from .contract import BackendContract, QuotaMirroringContract, wait_for_state, wait_until
from .slurm_cluster import LocalSlurm

pytestmark = pytest.mark.slow

SSH_PORTS = (40000, 44999)


def make_driver(cluster: LocalSlurm, prefix: str | None = None, **kwargs) -> SlurmBackend:
    options = {
        "token_file": cluster.token_file,
        "job_dir": str(cluster.job_dir),
        "prefix": prefix or f"t{uuid.uuid4().hex[:8]}-",
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


@pytest.fixture
def slurm_driver(local_slurm: LocalSlurm) -> Iterator[SlurmBackend]:
    driver = make_driver(local_slurm)
    yield driver
    clean_up(driver)


class TestSlurmContract(QuotaMirroringContract):
    STATE_TIMEOUT = 40.0

    @pytest.fixture
    def backend(self, slurm_driver: SlurmBackend) -> SlurmBackend:
        return slurm_driver


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

    # Raising the limit lets it run.
    slurm_accounts.set_gpu_limit(org, "h100", 2, backend=slurm_driver)
    wait_for_state(slurm_driver, second, MachineState.RUNNING, 40)


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
