"""Celery tasks: thin interfaces to `portal.volumes.sync`, idempotent, acks_late, retried
with backoff on transient backend errors."""

from __future__ import annotations

import logging
import random

from celery import shared_task
from django.core.cache import cache

from portal.provisioning import TransientError
from portal.volumes import sync

logger = logging.getLogger(__name__)

MAX_RETRIES = 8


def backoff(retries: int) -> float:
    return min(2.0 * 2**retries, 300.0) * random.uniform(0.8, 1.2)  # noqa: S311


def _run(task, step: str, volume_id: int) -> None:
    try:
        getattr(sync, step)(volume_id)
    except TransientError as exc:
        if task.request.retries >= MAX_RETRIES:
            logger.warning("volume %s: %s gave up after retries: %s", volume_id, step, exc)
            return  # reconciliation and the next change pick it up
        raise task.retry(exc=exc, countdown=backoff(task.request.retries)) from exc


def _task(fun):
    return shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)(fun)


@_task
def volume_create(self, volume_id: int) -> None:
    _run(self, "create", volume_id)


@_task
def volume_resize(self, volume_id: int) -> None:
    _run(self, "resize", volume_id)


@_task
def volume_delete(self, volume_id: int) -> None:
    _run(self, "delete", volume_id)


@_task
def orphan_volume_delete(self, orphan_id: int) -> None:
    _run(self, "orphan_delete", orphan_id)


RECONCILE_LOCK = "volumes:reconcile-lock"


@shared_task(bind=True, acks_late=True, max_retries=3)
def volumes_reconcile(self) -> dict[str, int] | None:
    """Periodic (django-celery-beat), one run at a time."""
    if not cache.add(RECONCILE_LOCK, "1", timeout=300):
        return None
    try:
        return sync.reconcile().as_dict()
    except TransientError as exc:
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    finally:
        cache.delete(RECONCILE_LOCK)
