"""Reachability of what the portal depends on, for /healthz."""

import redis
from celery import current_app
from django.conf import settings
from django.db import connection


def check_database() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "unreachable"; the detail says why
        return False, f"{type(exc).__name__}: {exc}"
    return True, connection.vendor


def check_redis() -> tuple[bool, str]:
    try:
        client = redis.Redis.from_url(
            settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1
        )
        client.ping()
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, "pong"


def check_celery_workers(timeout: float = 1.0) -> tuple[bool, str]:
    try:
        replies = current_app.control.ping(timeout=timeout)
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    if not replies:
        return False, "no worker answered"
    return True, f"{len(replies)} worker(s)"


def health_report() -> tuple[bool, dict]:
    checks = {}
    database_ok, checks["database"] = _entry(check_database())
    redis_ok, checks["redis"] = _entry(check_redis())
    if redis_ok:
        workers_ok, checks["celery"] = _entry(check_celery_workers())
    else:
        workers_ok, checks["celery"] = False, {"ok": False, "detail": "broker unreachable"}
    healthy = database_ok and redis_ok and workers_ok
    return healthy, {"status": "ok" if healthy else "unhealthy", "checks": checks}


def _entry(result: tuple[bool, str]) -> tuple[bool, dict]:
    ok, detail = result
    return ok, {"ok": ok, "detail": detail}
