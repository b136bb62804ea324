"""Servers of a test's own, for the tests that run the portal's processes for real: a
PostgreSQL cluster (initdb/pg_ctl of the installed server), a Redis server, network namespaces
joined by a bridge (iproute2), and the portal's processes (gunicorn, Celery, the simulator).

Never the machine's PostgreSQL or Redis: each test gets free ports and directories of its own,
and stops what it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout: float, what: str, interval: float = 0.2, detail=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{detail()}")


def port_answers(host: str, port: int) -> bool:
    """From this (the root) namespace: the namespaces are reached over the bridge."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def in_netns(netns: str | None, command: list[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *command] if netns else command


def scratch_dir(prefix: str) -> Path:
    """A directory under /tmp that the postgres user may enter (pytest's are root-only)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


class PostgresServer:
    """`initdb` + `pg_ctl` as the postgres user, listening on `host:port` (in `netns`)."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, netns: str | None = None):
        self.host = host
        self.port = port or free_port()
        self.netns = netns
        self.dir = scratch_dir("backfill-pg-")
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"

    def _as_postgres(self, command: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            in_netns(self.netns, ["runuser", "-u", "postgres", "--", *command]),
            check=True,
            capture_output=True,
            text=True,
            **kwargs,
        )

    def start(self, template: Path | None = None) -> PostgresServer:
        """A new cluster: `initdb`, or a copy of `template`, the data directory of a cluster
        stopped cleanly (`migrated_postgres`: the portal's tables made once a session)."""
        shutil.chown(self.dir, "postgres", "postgres")
        if template is not None:
            subprocess.run(["cp", "-a", str(template), str(self.data)], check=True)
        else:
            self._as_postgres(
                [str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]
            )
        # Over the network a password is needed (scram); the test itself uses the socket.
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nhost all all samenet scram-sha-256\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )
        self.resume()
        return self

    def resume(self) -> None:
        """Start the server (again) on the same port and data."""
        options = (
            f"-h {self.host} -p {self.port} -k {self.dir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._as_postgres(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options]
            + ["-w", "-t", "30", "start"]
        )

    def halt(self) -> None:
        """Stop the server as an operator's restart does (`-m fast`: sessions are ended, work
        in progress rolled back), keeping its data for `resume()`."""
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"])

    def url(self, database: str) -> str:
        return f"postgres://postgres@{self.host}:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        """As the superuser, over the server's Unix socket."""
        result = subprocess.run(
            [str(PG_BIN / "psql"), "-h", str(self.dir), "-p", str(self.port), "-U", "postgres"]
            + ["-d", database, "-Atc", statement],
            capture_output=True,
            text=True,
        )
        if result.returncode:
            raise RuntimeError(f"psql: {result.stderr.strip()}")
        return result.stdout.strip()

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._as_postgres(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]
            )
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None, netns: str | None = None):
        self.host = host
        self.port = port or free_port()
        self.netns = netns
        self.process: subprocess.Popen | None = None
        self.dir = scratch_dir("backfill-redis-")

    def start(self) -> RedisServer:
        self.resume()
        return self

    def halt(self) -> None:
        """Stop the server; without persistence (`--save ""`), its queues and keys are gone."""
        if self.process is not None:
            stop_group(self.process)
            self.process = None

    def resume(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - fixed arguments
            in_netns(
                self.netns,
                [REDIS_SERVER, "--bind", self.host, "--port", str(self.port), "--save", ""]
                + ["--appendonly", "no", "--dir", str(self.dir), "--protected-mode", "no"],
            ),
            stdout=(self.dir / "redis.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(lambda: port_answers(self.host, self.port), 10, "redis")

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)
        shutil.rmtree(self.dir, ignore_errors=True)


def stop_group(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the process group, then SIGKILL what is left."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


class Network:
    """A bridge in the root namespace and one namespace per "host", each joined to the bridge
    by a veth pair: `10.<n>.0.1` is the bridge (the test process), hosts get .11, .12, …"""

    def __init__(self, hosts: list[str]):
        tag = secrets.token_hex(2)
        self.tag = tag
        self.subnet = 200 + int(tag, 16) % 50
        self.bridge = f"bfbr{tag}"
        self.bridge_address = f"10.{self.subnet}.{int(tag[:2], 16) % 250}.1"
        prefix = self.bridge_address.rsplit(".", 1)[0]
        self.hosts = {name: f"{prefix}.{11 + i}" for i, name in enumerate(hosts)}
        self.netns = {name: f"bf-{tag}-{name}" for name in hosts}

    def _ip(self, *args: str, netns: str | None = None) -> None:
        subprocess.run(in_netns(netns, ["ip", *args]), check=True, capture_output=True)

    def up(self) -> Network:
        self._ip("link", "add", self.bridge, "type", "bridge")
        self._ip("addr", "add", f"{self.bridge_address}/24", "dev", self.bridge)
        self._ip("link", "set", self.bridge, "up")
        for index, (name, address) in enumerate(self.hosts.items()):
            ns = self.netns[name]
            outside, inside = f"bf{self.tag}o{index}", f"bf{self.tag}i{index}"
            self._ip("netns", "add", ns)
            self._ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            self._ip("link", "set", inside, "netns", ns)
            self._ip("link", "set", outside, "master", self.bridge, "up")
            self._ip("addr", "add", f"{address}/24", "dev", inside, netns=ns)
            self._ip("link", "set", inside, "up", netns=ns)
            self._ip("link", "set", "lo", "up", netns=ns)
        return self

    def pids(self, name: str) -> list[int]:
        result = subprocess.run(
            ["ip", "netns", "pids", self.netns[name]], capture_output=True, text=True, check=False
        )
        return [int(pid) for pid in result.stdout.split()]

    def kill_everything_in(self, name: str) -> list[int]:
        """SIGKILL every process of the host at once: a machine that lost its power."""
        pids = self.pids(name)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    def down(self) -> None:
        for name, ns in self.netns.items():
            self.kill_everything_in(name)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)


def json_lines(path: Path) -> Iterator[dict]:
    """The JSON log lines of a file (other lines, e.g. Celery's banner, are skipped)."""
    if not path.exists():
        return
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                yield json.loads(line)
