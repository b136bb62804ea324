"""The provisioning benchmark's baseline: a Celery task that does (almost) nothing.

It only counts itself in Redis so that the runner knows when all have run (there is no
result backend). Registered with the worker by CELERY_IMPORTS in bench/settings.py.
"""

import redis
from celery import shared_task
from django.conf import settings

COUNTER = "bench:noop-done"
_redis = None


@shared_task(acks_late=True)
def noop() -> None:
    global _redis  # noqa: PLW0603 - one connection per worker process
    if _redis is None:
        _redis = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    _redis.incr(COUNTER)
