"""Reconciliation: the portal's instances against the backend's list(), drift repaired; and the
capacity snapshot."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, fields
from datetime import timedelta

from django.db.models import F
from django.utils import timezone

from portal.instances import lifecycle, signals, tasks
from portal.instances.capacity import CapacitySnapshot, capacity_snapshot_store
from portal.instances.conf import setting
from portal.instances.lifecycle import IllegalTransition
from portal.instances.models import (
    FINAL_STATES,
    TRANSITIONAL_STATES,
    Instance,
    InstanceEvent,
    State,
)
from portal.instances.sync.machines import (
    SYNCED_AT_RESOLUTION,
    apply_machine,
    load_instance,
    machine_lost,
    note_machine_reclaim,
    record_backend_id,
    ssh_changed,
)
from portal.provisioning import (
    FINAL_STATES as MACHINE_FINAL_STATES,
)
from portal.provisioning import (
    Machine,
    get_backend,
)
from portal.web.sql import Among, ReadBuiltOnce

logger = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    machines: int = 0
    lost: int = 0
    remade: int = 0  # lost before it was ready: provisioned again with the same request id
    adopted: int = 0
    orphans_terminated: int = 0
    leftovers_terminated: int = 0
    changes: int = 0
    redriven: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# Values of one `IN (...)` list: PostgreSQL takes at most 65,535 parameters in a statement
# (server-side binding sends each value as one), and a fleet lists more machines than that.
IN_LIST_CHUNK = 10_000


def _chunks(values: list) -> Iterator[list]:
    for first in range(0, len(values), IN_LIST_CHUNK):
        yield values[first : first + IN_LIST_CHUNK]


# The fields reconciliation reads; the rest stays in the database (10,000 rows is a lot of
# timestamps to parse). _in_step reads ssh_port and ssh_user too: a deferred one would cost a
# query per machine.
_FIELDS = (
    *("backend_id", "request_id", "state", "state_changed_at", "ip", "reclaim_notified_at"),
    *("ssh_port", "ssh_user", "ssh_sudo", "cluster_id", "synced_at"),
)
# The instances of listed machines, by machine id or request id: built once, the ids one
# parameter (an `IN` of each machine's id was built anew at every run, ~3 ms for 700).
_WHERE = {
    field: ReadBuiltOnce(
        lambda values, field=field: Instance.objects.filter(Among(F(field), values)).only(*_FIELDS),
        values=list,
    )
    for field in ("backend_id", "request_id")
}


def _instances_where(field: str, values: list) -> Iterator[Instance]:
    """The instances whose `field` is among `values` (only `_FIELDS` read), IN_LIST_CHUNK
    at a time."""
    for chunk in _chunks(values):
        yield from _WHERE[field].objects(values=chunk)


def _request_uuid(request_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(request_id)
    except (ValueError, TypeError, AttributeError):
        return None


def reconcile(*, redrive: bool = True) -> ReconcileReport:
    """Repair drift between the portal and the backend's list().

    - an instance whose machine the backend no longer has: failed (terminated if terminating),
      or, while it is still pending or provisioning, provisioned again with the same request id;
    - a machine no instance knows: adopted if its request id is an instance's that is still
      pending or provisioning, terminated (and logged) otherwise, also for ended instances;
    - state changes nobody reported (interruptions, reclaim notices included) are applied;
    - with `redrive`, an instance in transition for longer than INSTANCE_STALE_AFTER gets its
      task enqueued again (e.g. the worker running it died).
    """
    report = ReconcileReport()
    started = timezone.now()
    # Read before list(): a machine made after this read cannot be mistaken for a lost one.
    watched = dict(
        Instance.objects.exclude(state__in=FINAL_STATES)
        .exclude(backend_id="")
        .values_list("backend_id", "pk")
    )
    backend = get_backend()
    machines = backend.list()
    report.machines = len(machines)
    listed = {m.backend_id: m for m in machines}

    for backend_id, pk in watched.items():
        if backend_id not in listed:
            instance = load_instance(pk)
            if instance and instance.backend_id == backend_id and not instance.is_final:
                logger.warning("reconcile: backend lost %s of instance %s", backend_id, pk)
                if machine_lost(instance):
                    tasks.enqueue_provision(pk)
                    report.remade += 1
                else:
                    report.lost += 1

    # Instances by machine id first; by request id only for the machines no instance has the
    # id of (adoption, duplicates): not 10,000 ids twice over.
    by_backend = {i.backend_id: i for i in _instances_where("backend_id", list(listed))}
    unknown = (m.request_id for m in machines if m.backend_id not in by_backend)
    request_ids = [u for u in (_request_uuid(r) for r in unknown) if u]
    by_request = {str(i.request_id): i for i in _instances_where("request_id", request_ids)}

    in_step: list[int] = []  # agreeing instances whose synced_at is due: only that to write
    for machine in machines:
        try:
            _reconcile_machine(machine, by_backend, by_request, started, backend, report, in_step)
        except Exception:  # one bad machine must not stop the others; the next run retries
            logger.exception("reconcile: could not reconcile machine %s", machine.backend_id)
            report.errors += 1
    # One UPDATE per 10,000 rather than one per machine.
    for chunk in _chunks(in_step):
        Instance.objects.filter(pk__in=chunk).exclude(state__in=FINAL_STATES).update(
            synced_at=timezone.now()
        )

    if redrive:
        stale = timezone.now() - timedelta(seconds=setting("INSTANCE_STALE_AFTER"))
        # A cluster's nodes are re-driven with their cluster (instances_reconciled below).
        for pk, state in Instance.objects.filter(
            state__in=TRANSITIONAL_STATES, state_changed_at__lt=stale, cluster_id__isnull=True
        ).values_list("pk", "state"):
            tasks.enqueue_for_state(pk, state)
            report.redriven += 1
    signals.instances_reconciled.send(sender=Instance, report=report, redrive=redrive)
    if any((report.lost, report.remade, report.adopted, report.orphans_terminated, report.changes)):
        logger.info("reconcile: %s", report.as_dict())
    return report


def _stamp_due(instance: Instance, started) -> bool:
    """Whether an agreeing instance's synced_at is old enough to write again: at most once per
    SYNCED_AT_RESOLUTION, not at every pass (a fleet of 100,000 rewritten every 15 seconds)."""
    return instance.synced_at is None or instance.synced_at < started - SYNCED_AT_RESOLUTION


def _in_step(instance: Instance, machine: Machine) -> bool:
    """Whether apply_machine would find nothing to do but stamp synced_at: same state, same
    IP (or none reported), no reclaim notice it has not recorded yet."""
    return (
        instance.state == machine.state.value
        and (not machine.ip or (machine.ip == instance.ip and not ssh_changed(instance, machine)))
        and (machine.reclaim_at is None or instance.reclaim_notified_at is not None)
    )


def _reconcile_machine(
    machine, by_backend, by_request, started, backend, report, in_step: list[int]
) -> None:
    alive = machine.state not in MACHINE_FINAL_STATES
    instance = by_backend.get(machine.backend_id) or by_request.get(machine.request_id)
    if instance is None:
        if alive:
            logger.warning(
                "reconcile: terminating orphan machine %s (request %s, %s in %s): "
                "no instance owns it",
                machine.backend_id,
                machine.request_id,
                machine.instance_type,
                machine.region,
            )
            backend.terminate(machine.backend_id)
            report.orphans_terminated += 1
        return

    if instance.backend_id and instance.backend_id != machine.backend_id:
        if alive:  # a second machine for one request: the backend broke its promise
            logger.warning(
                "reconcile: terminating duplicate machine %s of instance %s",
                machine.backend_id,
                instance.pk,
            )
            backend.terminate(machine.backend_id)
            report.orphans_terminated += 1
        return

    adopted = False
    if not instance.backend_id:
        # The crash between "the backend made it" and "the portal recorded it".
        adopted = record_backend_id(
            instance.pk,
            machine.backend_id,
            message=f"Adopted machine {machine.backend_id}, which the backend made for this "
            "instance (found by reconciliation).",
        )
        instance.refresh_from_db()
        if adopted and instance.state in (State.PENDING, State.PROVISIONING):
            report.adopted += 1
            with suppress(IllegalTransition):
                lifecycle.mark_provisioning(instance.pk)
            instance.refresh_from_db()

    if instance.is_final:
        if alive:
            logger.warning(
                "reconcile: terminating machine %s of ended instance %s",
                machine.backend_id,
                instance.pk,
            )
            backend.terminate(machine.backend_id)
            InstanceEvent.objects.create(
                instance=instance,
                message=f"Terminated machine {machine.backend_id}, left behind by this "
                "ended instance (found by reconciliation).",
            )
            report.leftovers_terminated += 1
        return

    if instance.in_cluster and instance.state in (
        State.PENDING,
        State.PROVISIONING,
        State.STARTING,
    ):
        # A cluster coming up: its task moves the nodes to running together (none is billed
        # before all run); reconciliation re-drives that task (signals.instances_reconciled).
        return

    settled_before_list = instance.state_changed_at < started
    requested = instance.state in (
        State.STOPPING,
        State.STARTING,
        State.REBOOTING,
        State.TERMINATING,
    )
    # Only a machine's view older than the instance's last change may move it, except that
    # an adopted instance (pending or provisioning) can only move forward anyway.
    if not alive or adopted or (settled_before_list and not requested):
        if alive and not adopted and _in_step(instance, machine):
            if _stamp_due(instance, started):
                in_step.append(instance.pk)
        else:
            report.changes += len(apply_machine(instance, machine, source="reconcile"))
    else:
        note_machine_reclaim(instance, machine)


def capacity_refresh() -> CapacitySnapshot:
    """Store what the backend has free now, for the launch page and the launch checks."""
    return capacity_snapshot_store(capacities=get_backend().capacity())
