"""Fixtures of the runtime tests: production-like environments for processes of their own."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.servers import REPO, PostgresServer


def production_env(**overrides: str) -> dict[str, str]:
    """What production's required settings need, with throwaway values; `overrides` win."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DJANGO_SETTINGS_MODULE": "portal.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
        "SITE_URL": "https://backfill.test",
        "EMAIL_HOST": "127.0.0.1",
        "PROVISIONING_TOKEN": secrets.token_hex(16),
        "LOG_FORMAT": "json",
    }
    for name in ("PROMETHEUS_MULTIPROC_DIR", "SENTRY_DSN", "METRICS_TOKEN", "TRUSTED_PROXIES"):
        env.pop(name, None)
    env.update(overrides)
    return env


def _static_inputs_key() -> str:
    """Changes when a static file of the repository (or the dependencies) changes."""
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes())
    roots = [REPO / "static", *sorted((REPO / "portal").glob("*/static"))]
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                stat = path.stat()
                digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def collected_static() -> Path:
    """A BACKFILL_VAR_DIR whose staticfiles/ holds production's collected (hashed, compressed)
    static files. Collecting compresses every file (about 30 s), so it is kept in /tmp and
    reused while the static files stay the same."""
    var_dir = Path("/tmp") / f"backfill-static-{_static_inputs_key()}"
    if not (var_dir / "staticfiles" / "staticfiles.json").exists():
        work = Path(f"{var_dir}.{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=REPO,
            env=production_env(BACKFILL_VAR_DIR=str(work)),
            check=True,
        )
        try:
            work.rename(var_dir)
        except OSError:  # another run made it meanwhile
            shutil.rmtree(work, ignore_errors=True)
    return var_dir


@pytest.fixture(scope="session")
def migrated_postgres() -> Iterator[Path]:
    """The data directory of a stopped PostgreSQL cluster whose `backfill` database has every
    migration applied: a test's own server starts from a copy of it
    (`PostgresServer().start(template=...)`) instead of migrating again (about 15 s of CPU
    each). The tests that run migrations as what they check (`make run`) still migrate."""
    template = PostgresServer()
    try:
        template.start()
        password = "pg-" + secrets.token_hex(8)
        template.sql(f"ALTER USER postgres PASSWORD '{password}'")
        template.sql("CREATE DATABASE backfill")
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=REPO,
            env=production_env(
                DATABASE_URL=f"postgres://postgres:{password}@127.0.0.1:{template.port}/backfill"
            ),
            capture_output=True,
            text=True,
        )
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        template.halt()
        yield template.data
    finally:
        template.stop()
