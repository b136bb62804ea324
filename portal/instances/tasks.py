"""Celery tasks: thin interfaces to `portal.instances.sync`.

Each task takes ids, calls one service, and owns only retries and giving up. All are
`acks_late` (the project default, repeated here): a worker that dies mid-task leaves the
message to be delivered again, which is safe because every service may run twice.
Transient backend errors are retried with exponential backoff and jitter; when the retries are
spent, `sync.give_up` leaves a clear state (a launch becomes failed, with an e-mail).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

import redis
from celery import Task, shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError, transaction

from portal.instances import sync
from portal.instances.conf import setting
from portal.instances.models import State
from portal.lib import metrics
from portal.provisioning import TransientError

logger = logging.getLogger(__name__)

# What PostgreSQL being down or restarting looks like to a task.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)

P = ParamSpec("P")
R = TypeVar("R")


def _instance_task(fun: Callable[Concatenate[Task[P, R], P], R]) -> Task[P, R]:
    """A bound task, acks_late; max_retries=None: `_drive` counts retries itself and gives up
    through the service."""
    return shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)(fun)


def backoff(retries: int) -> float:
    """Seconds before retry number `retries + 1`: base * 2**retries, capped, ±20 % jitter."""
    delay = min(setting("INSTANCE_RETRY_BASE") * 2**retries, setting("INSTANCE_RETRY_MAX"))
    return delay * random.uniform(0.8, 1.2)


def _drive(task, step: str, instance_id: int) -> None:
    try:
        in_transition = getattr(sync, step)(instance_id)
    except DATABASE_UNAVAILABLE as exc:
        # PostgreSQL restarting or unreachable: the step changed nothing it did not commit, and
        # may run again. Try again soon rather than wait for reconciliation to re-drive it.
        logger.warning(
            "instance %s: %s: database unavailable, retrying: %s", instance_id, step, exc
        )
        raise task.retry(exc=exc, countdown=backoff(min(task.request.retries, 4))) from exc
    except TransientError as exc:
        if task.request.retries >= setting("INSTANCE_TASK_MAX_RETRIES"):
            logger.warning("instance %s: %s gave up after retries: %s", instance_id, step, exc)
            sync.give_up(instance_id, step=step, error=exc)
            return
        raise task.retry(exc=exc, countdown=backoff(task.request.retries)) from exc
    if in_transition:
        instance_poll.apply_async((instance_id,), countdown=setting("INSTANCE_POLL_INTERVAL"))


@_instance_task
def instance_provision(self, instance_id: int) -> None:
    """Provision this launch and every other single launch waiting now, together
    (`sync.provision_pending`); an instance that is no longer pending (a retry, a re-drive)
    goes on alone (`sync.provision`)."""
    _provision_queue_taken()
    own = instance_id or None  # 0: a run queued for the launches one run left waiting
    try:
        outcome = sync.provision_pending(own)
    except DATABASE_UNAVAILABLE as exc:
        logger.warning(
            "instance %s: provision: database unavailable, retrying: %s", instance_id, exc
        )
        raise self.retry(exc=exc, countdown=backoff(min(self.request.retries, 4))) from exc
    for pk, error in outcome.retry.items():
        if pk != instance_id:  # each of the others retries on its own task
            logger.warning("instance %s: provision: %s; its own task retries", pk, error)
            instance_provision.apply_async((pk,), countdown=backoff(0))
    for pk in outcome.watching:  # still in transition after the run: each is polled
        instance_poll.apply_async((pk,), countdown=setting("INSTANCE_POLL_INTERVAL"))
    if outcome.more:
        _queue_provision(None)
    if instance_id in outcome.retry:
        failure = outcome.retry[instance_id]
        if self.request.retries >= setting("INSTANCE_TASK_MAX_RETRIES"):
            logger.warning("instance %s: provision gave up after retries: %s", instance_id, failure)
            sync.give_up(instance_id, step="provision", error=failure)
            return
        raise self.retry(exc=failure, countdown=backoff(self.request.retries)) from failure
    if own is None or own in outcome.claimed:
        return
    _drive(self, "provision", instance_id)


@_instance_task
def instance_poll(self, instance_id: int) -> None:
    _drive(self, "poll", instance_id)


@_instance_task
def instance_stop(self, instance_id: int) -> None:
    _drive(self, "stop", instance_id)


@_instance_task
def instance_start(self, instance_id: int) -> None:
    _drive(self, "start", instance_id)


@_instance_task
def instance_reboot(self, instance_id: int) -> None:
    _drive(self, "reboot", instance_id)


@_instance_task
def instance_terminate(self, instance_id: int) -> None:
    _drive(self, "terminate", instance_id)


@_instance_task
def instance_resync(self, instance_id: int) -> None:
    _drive(self, "resync", instance_id)


RECONCILE_LOCK = "instances:reconcile-lock"


@shared_task(bind=True, acks_late=True, max_retries=3)
def instances_reconcile(self) -> dict[str, int] | None:
    """Periodic (django-celery-beat). One run at a time; a failed run is retried a little."""
    if not cache.add(RECONCILE_LOCK, "1", timeout=300):
        logger.info("reconcile: another run is in progress")
        return None
    try:
        report = sync.reconcile().as_dict()
        metrics.count_reconciliation(report)
        return report
    except TransientError as exc:
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    finally:
        cache.delete(RECONCILE_LOCK)


@shared_task(bind=True, acks_late=True, max_retries=2)
def capacity_refresh(self) -> None:
    """Periodic: store the backend's free capacity for the launch page."""
    try:
        sync.capacity_refresh()
    except TransientError as exc:
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc


# Enqueueing, always after the surrounding transaction commits.

_BY_NAME = {
    "provision": instance_provision,
    "stop": instance_stop,
    "start": instance_start,
    "reboot": instance_reboot,
    "terminate": instance_terminate,
}


def _send(task: Task[[int], None], instance_id: int) -> bool:
    """Enqueue now (after the commit). With the broker down the change stays made and the
    request answers: reconciliation re-drives an instance left in transition
    (INSTANCE_STALE_AFTER) once the broker is back."""
    try:
        task.delay(instance_id)
    except Exception:
        logger.warning(
            "instance %s: could not enqueue %s (broker unavailable); reconciliation will "
            "re-drive it",
            instance_id,
            task.name,
            exc_info=True,
        )
        return False
    return True


# Set while an `instance_provision` run is queued and has not started: a launch committed
# meanwhile is taken by that run (it takes every pending launch when it starts), so it
# enqueues nothing. The run clears it before it looks, so a launch committed after that
# queues the next run. It expires, in case the run never starts (the broker lost it). It is
# kept beside the queue it speaks of, in the broker's Redis database.
PROVISION_QUEUED = "backfill:instances:provision-queued"
PROVISION_QUEUED_SECONDS = 30
_broker: redis.Redis | None = None


def _marks() -> redis.Redis:
    global _broker  # noqa: PLW0603 - one connection pool per process
    if _broker is None:
        _broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    return _broker


def _queue_provision(instance_id: int | None) -> None:
    """Queue a provisioning run unless one is queued already. Where a task runs at once
    (Celery's eager mode) or the mark cannot be read, every launch queues its own."""
    if not instance_provision.app.conf.task_always_eager:
        try:
            if not _marks().set(PROVISION_QUEUED, 1, nx=True, ex=PROVISION_QUEUED_SECONDS):
                return
        except redis.RedisError:
            logger.warning("provision queue mark unavailable; enqueueing", exc_info=True)
    # None: more launches waited than one run takes; the next run is for them (id 0).
    if not _send(instance_provision, instance_id or 0):
        _provision_queue_taken()


def _provision_queue_taken() -> None:
    try:
        _marks().delete(PROVISION_QUEUED)
    except redis.RedisError:
        logger.warning("provision queue mark unavailable", exc_info=True)


def _enqueue(name: str, instance_id: int) -> None:
    task = _BY_NAME[name]
    transaction.on_commit(lambda: _send(task, instance_id))


def enqueue_provision(instance_id: int) -> None:
    """After the commit: a provisioning run, unless one is queued that will take this launch."""
    transaction.on_commit(lambda: _queue_provision(instance_id))


def enqueue_stop(instance_id: int) -> None:
    _enqueue("stop", instance_id)


def enqueue_start(instance_id: int) -> None:
    _enqueue("start", instance_id)


def enqueue_reboot(instance_id: int) -> None:
    _enqueue("reboot", instance_id)


def enqueue_terminate(instance_id: int) -> None:
    _enqueue("terminate", instance_id)


_FOR_STATE: dict[str, Task[[int], None]] = {
    State.PENDING: instance_provision,
    State.PROVISIONING: instance_provision,
    State.STOPPING: instance_stop,
    State.STARTING: instance_start,
    State.REBOOTING: instance_poll,  # a second reboot call would reboot twice; just watch it
    State.TERMINATING: instance_terminate,
}


def enqueue_for_state(instance_id: int, state: str) -> None:
    """The task that drives an instance in this transitional state (reconcile's re-drive)."""
    task = _FOR_STATE.get(state)
    if task is not None:
        transaction.on_commit(lambda: _send(task, instance_id))
