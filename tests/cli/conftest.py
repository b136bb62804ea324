"""The `backfill` CLI as its users run it: installed from cli/ into a virtualenv of its own
(its dependencies, typer and rich, are not the portal's), run as a subprocess against
pytest-django's live server.

The virtualenv is made once under var/cli-venv (`python -m venv` + `pip install ./cli`) and
made again only when a file of cli/ changes (a hash of them is kept beside it).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from portal.api.models import Scope
from portal.api.scopes import role_can_write
from portal.api.services import api_token_create
from tests.cli.install import REPO, VENV, install_cli  # noqa: F401


@pytest.fixture(scope="session")
def cli_executable() -> Path:
    return install_cli()


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


@dataclass
class Cli:
    executable: Path
    config_dir: Path
    url: str

    def __call__(self, *args: str, token: str | None = None, stdin: str = "", timeout=120):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.config_dir.parent),
            "BACKFILL_CONFIG_DIR": str(self.config_dir),
            "BACKFILL_URL": self.url,
            "BACKFILL_POLL_INTERVAL": "0.3",
            "COLUMNS": "200",
        }
        if token:
            env["BACKFILL_TOKEN"] = token
        completed = subprocess.run(  # noqa: S603 - the CLI under test
            [str(self.executable), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        return Result(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture
def cli(cli_executable, live_server, tmp_path) -> Cli:
    """`cli("instances", "list")`: the installed CLI against the live server, with its own
    config directory (nothing saved yet)."""
    return Cli(cli_executable, tmp_path / "config" / "backfill", live_server.url)


@pytest.fixture
def token_of():
    def make(membership, scope=None, name="cli") -> str:
        if scope is None:
            scope = Scope.READ_WRITE if role_can_write(membership) else Scope.READ
        return api_token_create(membership=membership, name=name, scope=scope)[1]

    return make


def assert_one_line_error(result: Result, code: int, *words: str) -> None:
    """Failed with this exit code, one line on stderr naming `words`, no traceback."""
    assert result.code == code, (result.code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("backfill: error: "), lines
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in lines[0], (word, lines[0])
