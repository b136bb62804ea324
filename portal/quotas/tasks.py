"""Celery tasks of the quotas app: thin interfaces to `portal.quotas.sync`.

`acks_late` (the project default, repeated here): a worker that dies mid-task leaves the message
to be delivered again, which is safe because the mirror writes the whole set of limits.
"""

from __future__ import annotations

import random

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from portal.provisioning import TransientError
from portal.quotas import sync


def backoff(retries: int) -> float:
    """Seconds before retry number `retries + 1`, as for the instance tasks (the same tunables,
    INSTANCE_RETRY_BASE and INSTANCE_RETRY_MAX): base * 2**retries, capped, ±20 % jitter."""
    base = getattr(settings, "INSTANCE_RETRY_BASE", 2.0)
    delay = min(base * 2**retries, getattr(settings, "INSTANCE_RETRY_MAX", 120.0))
    return delay * random.uniform(0.8, 1.2)


@shared_task(bind=True, acks_late=True, max_retries=8)
def quota_mirror(self, organization_id: int, gpu_model: str = "") -> bool | None:
    """Mirror an organization's GPU quotas into the backend (the slurm driver: its Slurm
    account's GrpTRES); enqueued by `sync.enqueue_mirror` when a limit (of `gpu_model`)
    changes. One run per organization at a time; transient errors retry."""
    lock = sync.lock_key(organization_id)
    if not cache.add(lock, "1", timeout=120):
        raise self.retry(countdown=1 + random.random(), max_retries=120)
    try:
        return sync.mirror(organization_id=organization_id)
    except TransientError as exc:
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    finally:
        cache.delete(lock)
