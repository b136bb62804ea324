"""`make run` on a machine without PostgreSQL (or with BACKFILL_EMBEDDED=1) falls back to SQLite:
bin/run's set-up, `migrate` then `seed_demo`, must work there too."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess

import pytest

from tests.runtime.servers import REPO, VENV_BIN, scratch_dir

pytestmark = pytest.mark.slow


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own program, fixed arguments
        [str(VENV_BIN / "python"), "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


BUILT_ONCE_READS = """
from datetime import timedelta
from django.utils import timezone
from portal.billing.services.usage_sync import instances_needing_sync
from portal.instances.capacity import free_capacity
from portal.market.selectors import spot_price_current, spot_prices_current
from portal.operations.selectors import _reservations_since, sold_by_place
from portal.reclaims.selectors import warned_by_place
now = timezone.now()
instances_needing_sync(), sold_by_place(now), _reservations_since(now - timedelta(days=60))
warned_by_place(), spot_prices_current(), spot_price_current(region_id=1, instance_type_id=1)
free_capacity()
print("read built once: ok")
"""


def test_the_sqlite_database_takes_every_migration_and_the_demo_data():
    directory = scratch_dir("backfill-embedded-")
    try:
        database = directory / "backfill.sqlite3"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings.dev",
            "DATABASE_URL": f"sqlite:///{database}",
            "BACKFILL_VAR_DIR": str(directory),
            # The suite's Redis database, not the machine's default one.
            "REDIS_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9"),
            "CELERY_BROKER_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9"),
        }
        migrated = manage("migrate", "--noinput", env=env)
        assert migrated.returncode == 0, migrated.stderr[-2000:]
        seeded = manage("seed_demo", env=env)
        assert seeded.returncode == 0, seeded.stderr[-2000:]
        # The reads built once (portal.web.sql.ReadBuiltOnce) find their placeholders among
        # SQLite's parameters too (it takes datetimes as text).
        read = manage("shell", "-c", BUILT_ONCE_READS, env=env)
        assert read.returncode == 0, read.stderr[-2000:]
        assert "read built once: ok" in read.stdout

        with sqlite3.connect(database) as connection:
            recorded = connection.execute(
                "SELECT COUNT(*) FROM django_migrations WHERE app = 'billing'"
                " AND name = '0011_usage_rating_statistics'"
            ).fetchone()[0]
            users = connection.execute("SELECT COUNT(*) FROM accounts_user").fetchone()[0]
        assert recorded == 1  # PostgreSQL's planner statistics: recorded, nothing to do here
        assert users == 2  # the demo customer and the demo staff member
    finally:
        shutil.rmtree(directory, ignore_errors=True)
