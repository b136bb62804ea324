"""A real Slurm for tests, started and stopped with bin/slurm in a directory of its own.

Its ports, database and directory are its own (several test runs can share a machine), and
it is purged afterwards (daemons stopped after cancelling every job, database dropped).
When Slurm is not installed the tests fail loudly: `bin/test` and `.ci/run` install it.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from portal.provisioning.drivers.slurm import SlurmBackend

from .contract import wait_until

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "bin" / "slurm"
NEEDED = ("munged", "slurmctld", "slurmd", "slurmdbd", "slurmrestd", "sacctmgr", "dropbear")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_base() -> int:
    # Below the kernel's ephemeral range (32768+ here): a port found free there can be taken by
    # an outgoing connection before slurmd binds it ("Unable to bind listen port").
    low = min(32768, _ephemeral_low())
    for _ in range(50):
        base = random.randrange(10000, low - 100, 50)  # noqa: S311 - a port, not a secret
        if all(_port_free(base + n) for n in range(20)):
            return base
    raise RuntimeError("no free ports for a test Slurm")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


class LocalSlurm:
    def __init__(self) -> None:
        missing = [b for b in NEEDED if not shutil.which(b)]
        if missing or os.geteuid() != 0:
            pytest.fail(
                "the slurm driver's tests need Debian's Slurm packages and root "
                f"(missing: {', '.join(missing) or 'root'}); `bin/test` installs them as root",
                pytrace=False,
            )
        self.dir = Path(tempfile.mkdtemp(prefix="backfill-slurm-"))
        self.dir.chmod(0o755)
        self.port_base = _port_base()
        self.env = {
            **os.environ,
            "SLURM_DIR": str(self.dir),
            "SLURM_PORT_BASE": str(self.port_base),
            "SLURM_DB_NAME": f"slurm_acct_test_{self.port_base}",
            "SLURM_CLUSTER_NAME": "bftest",
            "SLURM_PREEMPT_GRACE": "3",
        }
        self.env.pop("SLURM_CONF", None)
        self.rest_url = f"http://127.0.0.1:{self.port_base + 3}"
        self.token_file = self.dir / "token"
        self.job_dir = self.dir / "jobs"
        self.conf = self.dir / "etc" / "slurm.conf"

    def run(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [str(BIN), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"bin/slurm {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
            )
        return result.stdout

    def start(self) -> LocalSlurm:
        self.run("start")
        return self

    def token(self, lifespan: int) -> str:
        return self.run("token", str(lifespan)).strip()

    def tool(self, *argv: str) -> str:
        """A Slurm command (scontrol, sacctmgr, squeue) against this cluster."""
        env = {**self.env, "SLURM_CONF": str(self.conf)}
        return subprocess.run(
            list(argv), env=env, capture_output=True, text=True, timeout=30, check=True
        ).stdout

    def stop_daemon(self, name: str) -> None:
        pid = int((self.dir / "run" / f"{name}.pid").read_text())
        os.kill(pid, 15)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            subprocess.run(["sleep", "0.1"], check=False)

    def purge(self) -> None:
        self.run("purge")


def wait_for_free_gpus(driver: SlurmBackend, timeout: float = 30.0) -> None:
    """Wait until no node holds a GPU. A cancelled job reads CANCELLED at once but gives its
    node back only once it has completed (KillWait, epilog), so the next test would see a full
    node free up under it."""
    wait_until(
        lambda: not any(node.used for node in driver._nodes().values()),
        timeout,
        "Slurm to give every GPU back",
    )
