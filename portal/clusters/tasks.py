"""Celery tasks: ONE task drives a cluster, whatever its size.

`cluster_drive(cluster_id, step)`: "provision" (one `cluster_create` for all nodes), "act" (the
backend calls of a stop, start or terminate, node by node in this one task) or "poll" (look at
every node, apply in one transaction, settle). While anything is in transition it polls again.
acks_late; transient backend errors are retried with the instances' backoff and finally given
up through `sync.give_up`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import shared_task
from django.db import transaction

from portal.clusters import sync
from portal.clusters.conf import setting
from portal.instances.conf import setting as instance_setting
from portal.instances.tasks import backoff
from portal.provisioning import TransientError

logger = logging.getLogger(__name__)

STEPS: dict[str, Callable[[int], bool]] = {
    "provision": sync.provision,
    "act": sync.act,
    "poll": sync.poll,
}


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def cluster_drive(self, cluster_id: int, step: str = "poll") -> None:
    try:
        watching = STEPS[step](cluster_id)
    except TransientError as exc:
        if self.request.retries >= instance_setting("INSTANCE_TASK_MAX_RETRIES"):
            logger.warning("cluster %s: %s gave up after retries: %s", cluster_id, step, exc)
            sync.give_up(cluster_id, error=exc)
            return
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    if watching:
        cluster_drive.apply_async(
            (cluster_id, "poll"),
            countdown=setting("CLUSTER_POLL_INTERVAL"),
        )


def enqueue(cluster_id: int, step: str) -> None:
    """After the surrounding transaction commits."""
    transaction.on_commit(lambda: cluster_drive.delay(cluster_id, step))
