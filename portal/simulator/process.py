"""Run the simulator as a real subprocess, for tests and scripts."""

from __future__ import annotations

import os
import secrets
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from .control import ControlClient

REPO_ROOT = Path(__file__).resolve().parents[2]


class SimulatorProcess:
    """`python -m portal.simulator` on a free port; `url`, `token` and `control` once started."""

    def __init__(
        self,
        state_path: Path,
        *,
        token: str | None = None,
        catalog: str = "default",
        zero_delays: bool = True,
        extra_args: tuple[str, ...] = (),
        log_path: Path | None = None,
    ) -> None:
        self.state_path = state_path
        self.token = token or secrets.token_hex(16)
        self.catalog = catalog
        self.zero_delays = zero_delays
        self.extra_args = extra_args
        self.log_path = log_path or state_path.with_suffix(".log")
        self.port = 0
        self.url = ""
        self.process: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None

    @property
    def control(self) -> ControlClient:
        return ControlClient(self.url, self.token)

    def start(self, timeout: float = 10.0) -> SimulatorProcess:
        args = [
            sys.executable, "-m", "portal.simulator",
            "--port", str(self.port),
            "--state", str(self.state_path),
            "--token", self.token,
            "--catalog", self.catalog,
            *(["--zero-delays"] if self.zero_delays else []),
            *self.extra_args,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *sys.path])}
        self._log = self.log_path.open("a")
        self.process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        line = self._first_line(timeout)
        self.url = line.rsplit(" ", 1)[-1]
        # Keep the port, so a restart comes back where clients expect it.
        self.port = int(self.url.rsplit(":", 1)[-1])
        return self

    def _first_line(self, timeout: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.1)
            if ready:
                line = self.process.stdout.readline().strip()
                if line.startswith("simulator listening on "):
                    return line
            if self.process.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"simulator did not start; see {self.log_path}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stdout:
                self.process.stdout.close()
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is written on the way out (a crash)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        self.stop()

    def restart(self) -> SimulatorProcess:
        self.stop()
        return self.start()

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
