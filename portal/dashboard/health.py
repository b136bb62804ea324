"""Liveness and readiness: /healthz says the process answers; /readyz says whether it can serve.

Ready means: the database answers, Redis (cache and broker) answers, and a Celery worker wrote
its heartbeat recently (READY_WORKER_WITHIN seconds; portal.runtime.worker writes it every few
seconds), so what a request enqueues will be run. The details are for staff and monitoring
(METRICS_TOKEN, METRICS_ALLOWED_IPS); anyone else sees only the status.
"""

import redis
from django.conf import settings
from django.db import connection

from portal.lib.heartbeat import workers_seen


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


def check_celery_workers() -> tuple[bool, str]:
    within = settings.READY_WORKER_WITHIN
    try:
        seen = workers_seen(settings.CELERY_BROKER_URL, within)
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    if not seen:
        return False, f"no worker seen in the last {within} s"
    return True, f"{len(seen)} worker(s) seen in the last {within} s"


def readiness_report() -> tuple[bool, dict]:
    checks = {}
    database_ok, checks["database"] = _entry(check_database())
    redis_ok, checks["redis"] = _entry(check_redis())
    if redis_ok:
        workers_ok, checks["celery"] = _entry(check_celery_workers())
    else:
        workers_ok, checks["celery"] = False, {"ok": False, "detail": "broker unreachable"}
    ready = database_ok and redis_ok and workers_ok
    return ready, {"status": "ready" if ready else "unavailable", "checks": checks}


def _entry(result: tuple[bool, str]) -> tuple[bool, dict]:
    ok, detail = result
    return ok, {"ok": ok, "detail": detail}
