"""`manage.py check --deploy` with the production settings runs before `collectstatic`.

The URLconf is imported by the checks; nothing in it may need the static files' manifest
(ManifestStaticFilesStorage raises for a file it has not collected yet).
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_check_deploy_with_production_settings_needs_no_collectstatic(tmp_path):
    inherited = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    environ = {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "portal.settings.production",
        "DJANGO_SECRET_KEY": "k" * 60 + "-not-a-real-key-0123456789",
        "DATABASE_URL": "postgres://nobody@127.0.0.1:5432/nothing",
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "DJANGO_ALLOWED_HOSTS": "backfill.example.com",
        "SITE_URL": "https://backfill.example.com",
        "EMAIL_HOST": "smtp.example.com",
        "PROVISIONING_TOKEN": "t" * 40,
        "STATIC_ROOT": str(tmp_path / "static"),  # empty: collectstatic never ran
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
