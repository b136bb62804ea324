"""What production cannot run without. Checked before anything starts: by the production
settings (manage.py, Celery worker and beat) and by gunicorn's master (gunicorn.conf.py),
which would otherwise restart failing workers forever.

A process that misses one says so in one line naming the variable, and exits with status 78
(EX_CONFIG), which supervisord and systemd units treat as "do not restart".
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

EX_CONFIG = 78

REQUIRED = {
    "DJANGO_SECRET_KEY": "50 or more random characters",
    "DATABASE_URL": "postgres://USER:PASSWORD@HOST:5432/NAME",
    "REDIS_URL": "redis://HOST:6379/0",
    "DJANGO_ALLOWED_HOSTS": "the portal's host names, comma-separated",
    "SITE_URL": "the portal's public URL, e.g. https://backfill.example.com",
    "EMAIL_HOST": "the outgoing SMTP server",
    "PROVISIONING_TOKEN": "the provisioning backend's shared secret",
}


def problem(environ: Mapping[str, str] | None = None) -> str | None:
    """The first thing wrong with the environment for production, as one line, or None."""
    environ = os.environ if environ is None else environ
    for name, example in REQUIRED.items():
        if not environ.get(name, "").strip():
            return f"{name} is not set ({example})"
    secret = environ["DJANGO_SECRET_KEY"]
    if len(secret) < 50 or secret.startswith("dev-"):
        return "DJANGO_SECRET_KEY must be 50 or more random characters"
    if not environ["DATABASE_URL"].startswith(("postgres://", "postgresql://")):
        return "DATABASE_URL must be a PostgreSQL URL (postgres://USER:PASSWORD@HOST:5432/NAME)"
    return None


def refuse_to_start_unless_configured(environ: Mapping[str, str] | None = None) -> None:
    found = problem(environ)
    if found:
        sys.stderr.write(f"Backfill refuses to start: {found}\n")
        sys.stderr.flush()
        raise SystemExit(EX_CONFIG)
