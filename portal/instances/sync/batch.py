"""Provisioning the single launches waiting at one moment together, as a cluster's nodes are.

A launch enqueues its `instance_provision` task only when no run is queued yet
(`tasks.enqueue_provision`); the run takes its own instance and every other pending launch
waiting then (`provision_pending`): one transaction moves them all to provisioning
(`lifecycle.mark_provisioning_many`), each gets its own `create` (one driver, one HTTP
session; several at once where the driver takes them: when the backend runs short during a
run, which launch it refuses is its order of arrival), their machine ids are recorded in one
transaction, each machine is looked at once, and what the backend said is applied to all of
them at once (`apply_machines`: the instances that become running move together and are
metered together on commit). Each instance keeps its own event, audit entry, webhook delivery
and e-mail.

A failure stays with its instance: no capacity or a refusal fails that instance alone; a
transient error hands it to its own `instance_provision` task, with that task's retries.
"""

from __future__ import annotations

import contextvars
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from portal.instances import lifecycle
from portal.instances.lifecycle.apply import by_row
from portal.instances.models import Instance, InstanceEvent, State
from portal.instances.sync.machines import apply_machines, create_arguments, create_refused
from portal.lib import logcontext
from portal.provisioning import (
    Machine,
    NotFound,
    PermanentError,
    TransientError,
    get_backend,
)
from portal.volumes.models import Attachment

logger = logging.getLogger(__name__)

ProvisioningFailure = TransientError | PermanentError

# At most this many launches in one run; a run that took this many asks for another.
BATCH_MAX = 200

# A run under way is marked; a run that starts meanwhile (on the worker's other process, queued
# by a launch that came during the first) waits for it to end, up to RUN_WAIT seconds, before
# it claims: the launches that arrive during one run are taken by the next one together, not
# one or two at a time by runs that overlap it. A run costs ~20 ms of CPU of its own whatever it
# takes (its task, ~40 queries): at a stream of launches, fewer and larger runs cost less.
RUN_MARK = "instances:provision:running"
RUN_MARK_SECONDS = 30  # a run that died without clearing its mark holds no one up after this
RUN_WAIT = 2.0
RUN_POLL = 0.05


@dataclass
class Outcome:
    """What a run did: the instances it moved to provisioning, those still in transition
    after it (each to be polled), those to hand to their own task after a transient error,
    and whether more launches were left waiting."""

    claimed: set[int] = field(default_factory=set)
    watching: list[int] = field(default_factory=list)
    retry: dict[int, Exception] = field(default_factory=dict)
    more: bool = False


def _claim(instance_id: int | None) -> tuple[list[Instance], bool]:
    """Move `instance_id` (if pending) and the other single launches waiting to provisioning,
    in one transaction. Rows another run holds are skipped, not waited for: that run has them.
    Returns the instances this call moved, read with what their create needs, and whether
    more were left waiting."""
    with transaction.atomic():
        waiting = list(
            Instance.objects.select_for_update(skip_locked=True)
            .filter(state=State.PENDING, cluster_id__isnull=True)
            .order_by("pk")
            .values_list("pk", flat=True)[: BATCH_MAX + 1]
        )
        more = len(waiting) > BATCH_MAX
        ids = set(waiting[:BATCH_MAX])
        if instance_id is not None:
            ids.add(instance_id)
        batch = lifecycle.mark_provisioning_many(ids)
    return [c.instance for c in batch.changes if not c.instance.in_cluster], more


def provision_pending(instance_id: int | None = None) -> Outcome:
    """Provision `instance_id` and every single launch pending now, together (once a run
    under way has ended: `RUN_WAIT`). An instance that is not pending (already further, or
    terminated meanwhile) is not touched here."""
    _wait_for_run_under_way()
    token = uuid.uuid4().hex
    cache.set(RUN_MARK, token, RUN_MARK_SECONDS)
    try:
        return _provision_pending(instance_id)
    finally:
        if cache.get(RUN_MARK) == token:
            cache.delete(RUN_MARK)


def _wait_for_run_under_way() -> None:
    deadline = time.monotonic() + RUN_WAIT
    while cache.get(RUN_MARK) is not None and time.monotonic() < deadline:
        time.sleep(RUN_POLL)


def _provision_pending(instance_id: int | None) -> Outcome:
    instances, more = _claim(instance_id)
    outcome = Outcome(claimed={instance.pk for instance in instances}, more=more)
    if not instances:
        return outcome
    backend = get_backend()
    # One look for the launches with volumes (most have none): only theirs are read each.
    with_volumes = set(
        Attachment.objects.filter(instance_id__in=[i.pk for i in instances]).values_list(
            "instance_id", flat=True
        )
    )
    made = _create_all(backend, instances, outcome, with_volumes=with_volumes)
    recorded = _record(made)
    # Terminated while its machine was being made: do not leave the machine behind.
    for pk in set(made) - recorded:
        if (
            made[pk]
            and not Instance.objects.filter(
                pk=pk, state__in=(State.PENDING, State.PROVISIONING)
            ).exists()
        ):
            try:
                backend.terminate(made[pk])
            except TransientError:  # reconciliation ends a machine an ended instance left
                logger.warning("instance %s: could not end its machine %s yet", pk, made[pk])
    # As the claim read them (a move since, a termination, is caught up with below).
    seen: list[tuple[Instance, Machine]] = []
    for instance in instances:
        if instance.pk not in recorded:
            continue
        instance.backend_id = made[instance.pk]
        try:
            with logcontext.bound(instance.log_context):
                seen.append((instance, backend.get(made[instance.pk])))
        except (NotFound, TransientError):
            outcome.watching.append(instance.pk)  # its poll finds out (a lost one is remade)
    changes = apply_machines(seen) if seen else []
    came_up = {c.instance.pk for c in changes if c.instance.state != State.PROVISIONING}
    outcome.watching += [instance.pk for instance, _ in seen if instance.pk not in came_up]
    return outcome


def _create_all(
    backend, instances: list[Instance], outcome: Outcome, *, with_volumes: set[int]
) -> dict[int, str]:
    """Each instance's own `create`, the machine ids made. A driver that takes concurrent
    calls (`concurrent_creates` > 1: the simulator answers a change once it is on disk, and
    changes made at once share one write) is asked from that many threads at once; the
    database is read and written here only, in the caller's thread. A failure ends or hands
    back that instance alone; an unexpected error is raised, as from a plain loop."""
    made = {i.pk: i.backend_id for i in instances if i.backend_id}
    asked = [
        (i, create_arguments(i, volumes=i.pk in with_volumes))
        for i in instances
        if not i.backend_id
    ]

    def ask(pair: tuple[Instance, dict[str, Any]]) -> str | ProvisioningFailure:
        instance, arguments = pair
        with logcontext.bound(instance.log_context):
            try:
                return backend.create(**arguments)
            except (TransientError, PermanentError) as exc:
                return exc

    threads = min(len(asked), max(1, int(getattr(backend, "concurrent_creates", 1))))
    if threads > 1:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="create") as pool:
            # Each call with this task's log context (a new thread starts with none).
            futures = [pool.submit(contextvars.copy_context().run, ask, pair) for pair in asked]
            answers = [future.result() for future in futures]
    else:
        answers = [ask(pair) for pair in asked]
    for (instance, _), answer in zip(asked, answers, strict=True):
        with logcontext.bound(instance.log_context):
            if isinstance(answer, TransientError):
                outcome.retry[instance.pk] = answer
            elif isinstance(answer, PermanentError):
                create_refused(instance, answer)
            else:
                made[instance.pk] = answer
    return made


def _record(made: dict[int, str]) -> set[int]:
    """Remember each machine's id, once (only where none is recorded yet: the rows locked and
    written in one transaction), with its event. Returns the instances recorded here."""
    if not made:
        return set()
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            Instance.objects.select_for_update()
            .filter(pk__in=list(made), backend_id="", state__in=(State.PENDING, State.PROVISIONING))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if rows:
            # `launched_at` keeps the first machine's time when a lost one is made again.
            Instance.objects.filter(pk__in=rows).update(
                backend_id=by_row("backend_id", {pk: made[pk] for pk in rows}),
                launched_at=Coalesce(F("launched_at"), Value(now)),
            )
            InstanceEvent.objects.bulk_create(
                InstanceEvent(
                    instance_id=pk, at=now, message=f"The backend made machine {made[pk]}."
                )
                for pk in rows
            )
    recorded = set(rows)
    missing = [pk for pk in made if pk not in recorded]
    if missing:  # recorded by an earlier run (a redelivered task): the same machine
        recorded |= set(
            Instance.objects.filter(
                pk__in=missing, backend_id__in=[made[pk] for pk in missing]
            ).values_list("pk", flat=True)
        )
    return recorded
