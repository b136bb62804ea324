"""Installing the `backfill` CLI (cli/) into its own virtualenv, var/cli-venv, only when its
sources changed. Used by bin/setup and by the CLI tests; no Django here."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLI_SOURCE = REPO / "cli"
VENV = Path(os.environ.get("BACKFILL_CLI_VENV", REPO / "var" / "cli-venv"))


def _source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(CLI_SOURCE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and ".egg-info" not in str(path):
            digest.update(str(path.relative_to(CLI_SOURCE)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def install_cli() -> Path:
    """var/cli-venv/bin/backfill, installed from the current cli/ sources."""
    stamp = VENV / ".backfill-cli-source"
    wanted = _source_hash()
    executable = VENV / "bin" / "backfill"
    if executable.exists() and stamp.exists() and stamp.read_text() == wanted:
        return executable
    if VENV.exists():
        shutil.rmtree(VENV)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)  # noqa: S603
    build = VENV / "build"
    shutil.copytree(CLI_SOURCE, build, ignore=shutil.ignore_patterns("*.egg-info", "build"))
    pip = [str(VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, str(build)], check=True)  # noqa: S603 - our own package
    shutil.rmtree(build)
    stamp.write_text(wanted)
    return executable


if __name__ == "__main__":
    print(install_cli())
