"""Start the test identity provider (tests/oidc_provider) as a separate process."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class IdentityProviderProcess:
    """`with IdentityProviderProcess(data_dir, redirect_uris=[...]) as idp: idp.issuer`"""

    def __init__(self, data_dir: Path, *, redirect_uris: list[str]):
        self.data_dir = data_dir
        self.redirect_uris = redirect_uris
        self.client_id = "backfill-" + secrets.token_hex(4)
        self.client_secret = secrets.token_urlsafe(24)
        self.issuer = ""
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> IdentityProviderProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "idp.log").open("w")
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env["PYTHONPATH"] = str(REPO)
        self.process = subprocess.Popen(  # noqa: S603 - our own test program
            [
                sys.executable,
                "-m",
                "tests.oidc_provider",
                "--port",
                "0",
                "--data",
                str(self.data_dir),
                "--client-id",
                self.client_id,
                # One argument: a secret that begins with "-" would read as an option.
                f"--client-secret={self.client_secret}",
                "--redirect-uri",
                " ".join(self.redirect_uris),
            ],  # fmt: skip
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        deadline = time.monotonic() + 60
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.startswith("ready "):
                self.issuer = line.split(" ", 1)[1].strip()
                return self
            if not line and self.process.poll() is not None:
                break
        self.__exit__()
        raise RuntimeError(f"the identity provider did not start:\n{self.log()}")

    def log(self) -> str:
        path = self.data_dir / "idp.log"
        return path.read_text() if path.exists() else ""

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
