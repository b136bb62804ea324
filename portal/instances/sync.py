"""Driving instances through the provisioning backend: the services the Celery tasks call.

Every function takes ids, may run any number of times (a retried or redelivered task), and
returns whether the instance is still in transition, in which case its task polls again.
Transient backend errors propagate to the task, which retries with backoff; permanent ones end
here with a clear state. The backend is only ever called from here, never in a web request.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
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
from portal.provisioning import (
    FINAL_STATES as MACHINE_FINAL_STATES,
)
from portal.provisioning import (
    CapacityError,
    InvalidState,
    Machine,
    MachineState,
    NotFound,
    PermanentError,
    get_backend,
)
from portal.volumes.selectors import volume_backend_ids_for_instance

logger = logging.getLogger(__name__)

# How fresh an agreeing instance's synced_at is kept: reconciliation rewrites it only once it
# is this old.
SYNCED_AT_RESOLUTION = timedelta(minutes=5)


def _load(instance_id: int) -> Instance | None:
    return (
        Instance.objects.select_related("instance_type", "region", "image", "organization")
        .filter(pk=instance_id)
        .first()
    )


def _record_backend_id(instance_id: int, backend_id: str, *, message: str) -> bool:
    """Remember the machine's id, once: a conditional UPDATE is the claim. `launched_at` keeps
    the first machine's time when a lost one is made again (the settle deadline counts from it)."""
    with transaction.atomic():
        claimed = Instance.objects.filter(pk=instance_id, backend_id="").update(
            backend_id=backend_id, launched_at=Coalesce(F("launched_at"), Value(timezone.now()))
        )
        if claimed:
            InstanceEvent.objects.create(instance_id=instance_id, message=message)
    return bool(claimed)


def _fail(instance_id: int, reason: str) -> None:
    with suppress(IllegalTransition):
        lifecycle.mark_failed(instance_id, reason=reason)


# Applying what the backend says


def _message(source: str, machine: Machine) -> str:
    state = machine.state.value
    if source == "reconcile":
        return f"Found by reconciliation: the backend has the machine {state}."
    return f"The backend reports the machine {state}."


# A request the portal made that the backend has not acted on yet, whatever it says meanwhile:
# an instance stopping whose machine still runs is not to be walked back to running.
NOT_ACTED_ON: dict[str, frozenset[MachineState]] = {
    State.STOPPING: frozenset(
        {MachineState.RUNNING, MachineState.REBOOTING, MachineState.STARTING}
    ),
    State.STARTING: frozenset({MachineState.STOPPED, MachineState.STOPPING}),
}


def apply_machine(instance: Instance, machine: Machine, *, source: str = "poll") -> list:
    """Bring the instance in line with the backend's view of its machine.

    Facts (IP, the reclaim notice) are recorded as they come; states are caught up along
    allowed transitions. A request the backend has not acted on yet (the instance is stopping,
    the machine still running) is left alone.
    """
    facts: dict = {"synced_at": timezone.now(), **_facts(instance, machine)}
    # One UPDATE for what the backend said, whatever the instance's state does next.
    Instance.objects.filter(pk=instance.pk).exclude(state__in=FINAL_STATES).update(**facts)
    _note_reclaim(instance, machine)

    target = machine.state.value
    if instance.state == State.TERMINATING:
        if machine.state in MACHINE_FINAL_STATES:
            change = None
            with suppress(IllegalTransition):
                change = lifecycle.mark_terminated(instance.pk, message=GONE)
            return [change] if change else []
        return []
    if instance.state == target or machine.state in NOT_ACTED_ON.get(instance.state, ()):
        return []
    at, reason = _why(machine)
    return lifecycle.catch_up(
        instance.pk,
        target,
        message=_message(source, machine),
        ip=machine.ip,
        reason=reason,
        at=at,
    )


GONE = "The machine is gone."


def apply_machines(seen: list[tuple[Instance, Machine]], *, source: str = "poll") -> list:
    """`apply_machine` of many instances at once (a cluster's nodes, from one backend read):
    the same facts, notices and transitions, written set-wise: one UPDATE per distinct set
    of facts, and the instances that make the same move moved together
    (`lifecycle.catch_up_many`)."""
    now = timezone.now()
    alike: dict[tuple, list[int]] = defaultdict(list)
    for instance, machine in seen:
        alike[tuple(sorted(_facts(instance, machine).items()))].append(instance.pk)
    for facts, pks in alike.items():
        Instance.objects.filter(pk__in=pks).exclude(state__in=FINAL_STATES).update(
            synced_at=now, **dict(facts)
        )
    for instance, machine in seen:
        _note_reclaim(instance, machine)

    gone = [
        instance.pk
        for instance, machine in seen
        if instance.state == State.TERMINATING and machine.state in MACHINE_FINAL_STATES
    ]
    changes: list = lifecycle.mark_terminated_many(gone, message=GONE).changes if gone else []
    moves: dict[tuple, dict[int, str | None]] = defaultdict(dict)
    for instance, machine in seen:
        target = machine.state.value
        if (
            instance.state == State.TERMINATING
            or instance.state == target
            or machine.state in NOT_ACTED_ON.get(instance.state, ())
        ):
            continue
        at, reason = _why(machine)
        moves[(target, _message(source, machine), reason, at)][instance.pk] = machine.ip
    for (target, message, reason, at), ips in moves.items():
        changes += lifecycle.catch_up_many(ips, target, message=message, reason=reason, at=at)
    return changes


def _facts(instance: Instance, machine: Machine) -> dict:
    """What the backend says of the machine that the instance does not have yet."""
    facts: dict = {}
    if machine.ip and machine.state not in MACHINE_FINAL_STATES:
        if machine.ip != instance.ip:
            facts["ip"] = machine.ip
        if _ssh_changed(instance, machine):
            # Where to log in may change with the address (a slurm job started again elsewhere).
            facts.update(
                ssh_port=machine.ssh_port,
                ssh_user=machine.ssh_user or "",
                ssh_sudo=machine.ssh_sudo,
            )
    return facts


def _why(machine: Machine) -> tuple[datetime | None, str]:
    """When and why a machine ended on the backend's side (interrupted, failed)."""
    if machine.state == MachineState.INTERRUPTED:
        when = f" at {machine.reclaim_at:%H:%M:%S} UTC" if machine.reclaim_at else ""
        return machine.reclaim_at, f"Reclaimed by the operator{when}: its capacity was needed."
    if machine.state == MachineState.FAILED:
        return None, (
            f"The backend reported a failure: {machine.detail}."
            if machine.detail
            else "The backend reported that the machine failed."
        )
    return None, ""


def _ssh_changed(instance: Instance, machine: Machine) -> bool:
    return (machine.ssh_port, machine.ssh_user or "", machine.ssh_sudo) != (
        instance.ssh_port,
        instance.ssh_user,
        instance.ssh_sudo,
    )


def _note_reclaim(instance: Instance, machine: Machine) -> None:
    """Record (and e-mail, once) a reclaim the backend announced for this machine."""
    if (
        machine.reclaim_at is None
        or instance.reclaim_notified_at is not None
        or instance.is_final
        or machine.state in MACHINE_FINAL_STATES
    ):
        return
    if lifecycle.note_reclaim(instance.pk, reclaim_at=machine.reclaim_at):
        _look_again_at(instance.pk, machine.reclaim_at)


def _look_again_at(instance_id: int, when) -> None:
    """Poll the instance just after `when` (the end of a reclaim notice), rather than wait
    for the next reconciliation to notice the interruption."""
    countdown = max(0.0, (when - timezone.now()).total_seconds()) + 1
    transaction.on_commit(
        lambda: tasks.instance_poll.apply_async((instance_id,), countdown=countdown)
    )


def machine_lost(instance: Instance) -> bool:
    """The backend has no machine for an instance that had one.

    Before the machine was ready (pending, provisioning) nothing was delivered or billed yet:
    the instance forgets the machine and is to be provisioned again with the same request id
    (True; the caller provisions or enqueues it), within the settle deadline of the first
    machine. A machine lost later ends the instance (failed; terminated if terminating).
    """
    if instance.state in (State.PENDING, State.PROVISIONING) and _forget_machine(instance):
        return True
    with suppress(IllegalTransition):
        if instance.state == State.TERMINATING:
            lifecycle.mark_terminated(
                instance.pk, message="The backend no longer has the machine; it is gone."
            )
        elif not instance.is_final:
            lifecycle.mark_failed(
                instance.pk,
                reason="The backend lost this machine. Billing stopped; launch a new instance "
                "to continue.",
            )
    return False


def _forget_machine(instance: Instance) -> bool:
    """Clear the lost machine's id of an instance still being made (a conditional UPDATE: one
    of several concurrent finders does it)."""
    lost = instance.backend_id
    with transaction.atomic():
        forgotten = Instance.objects.filter(
            pk=instance.pk,
            backend_id=lost,
            state__in=(State.PENDING, State.PROVISIONING),
        ).update(backend_id="", ip=None)
        if forgotten:
            logger.warning(
                "instance %s: the backend lost machine %s while it was being made; "
                "asking for it again",
                instance.pk,
                lost,
            )
            InstanceEvent.objects.create(
                instance_id=instance.pk,
                message=f"The backend lost machine {lost} before it was ready; Backfill asks "
                "for it again (same request).",
            )
    return bool(forgotten)


def _settle_deadline_passed(instance: Instance) -> bool:
    since = instance.launched_at or instance.created_at
    return timezone.now() - since > timedelta(seconds=setting("INSTANCE_SETTLE_TIMEOUT"))


# One function per task


def provision(instance_id: int) -> bool:
    """Create the machine (idempotent on the request id), then look at it once."""
    # Straight to the transition, which reads the row under its lock with the type, region,
    # image and organization the create below needs. Only a pending instance moves; for any
    # other (a second run, a terminated one) it changes nothing and the row is read here.
    change = None
    with suppress(IllegalTransition, Instance.DoesNotExist):
        change = lifecycle.mark_provisioning(instance_id)
    instance = change.instance if change is not None else _load(instance_id)
    if instance is None:
        return False
    if instance.state != State.PROVISIONING:
        return False  # terminated meanwhile, or another run got further; its task owns it
    if instance.in_cluster:
        return False  # a cluster's nodes are made together, by the cluster's task
    backend = get_backend()  # one driver (and its HTTP session) for the create and the look
    if not instance.backend_id:
        try:
            backend_id = backend.create(
                request_id=str(instance.request_id),
                instance_type=instance.instance_type.code,
                region=instance.region.code,
                image=instance.image.code,
                ssh_keys=[key["public_key"] for key in instance.ssh_keys],
                name=instance.name,
                preemptible=instance.preemptible,
                # Whose machine it is: its reservations (simulator), its Slurm account (slurm).
                account=instance.organization.slug,
                **_volumes_for(instance),
            )
        except CapacityError:
            _fail(
                instance_id,
                f"No free capacity for {instance.instance_type.name} in {instance.region.name} "
                "right now. Nothing was billed; try another region or try again later.",
            )
            return False
        except PermanentError as exc:
            _fail(instance_id, f"The backend refused to create the machine: {exc}")
            return False
        _record_backend_id(
            instance_id, backend_id, message=f"The backend made machine {backend_id}."
        )
        instance = _load(instance_id)  # fresh, and what the poll below looks at
        if instance is None or instance.state not in (State.PENDING, State.PROVISIONING):
            # Terminated while the machine was being made: do not leave it behind.
            backend.terminate(backend_id)
            return False
    return _poll(instance, backend)


def _volumes_for(instance: Instance) -> dict:
    """`volumes=[backend ids]` for a machine with volumes; nothing for one without, so that a
    driver without the volume capability is asked exactly as before."""
    ids = volume_backend_ids_for_instance(instance_id=instance.pk)
    return {"volumes": ids} if ids else {}


def poll(instance_id: int) -> bool:
    """Look at the machine once and apply what changed."""
    return _poll(_load(instance_id))


def _poll(instance: Instance | None, backend=None) -> bool:
    if instance is None or instance.is_final:
        return False
    instance_id = instance.pk
    if not instance.backend_id:
        if instance.state in (State.PENDING, State.PROVISIONING):
            return provision(instance_id)
        if instance.state == State.TERMINATING:
            return terminate(instance_id)
        return False
    backend = backend or get_backend()
    try:
        machine = backend.get(instance.backend_id)
    except NotFound:
        if machine_lost(instance):
            return provision(instance_id)
        return False
    changes = apply_machine(instance, machine)
    if changes:
        instance = changes[-1].instance  # read under the last transition's lock, as it left it
    else:
        instance.refresh_from_db()
    if instance.state == State.PROVISIONING and _settle_deadline_passed(instance):
        minutes = setting("INSTANCE_SETTLE_TIMEOUT") // 60
        _fail(instance_id, f"The machine did not become ready within {minutes} minutes.")
        backend.terminate(instance.backend_id)
        return False
    return instance.is_transitional


def _machine_action(instance_id: int, state: str, call: str) -> bool:
    instance = _load(instance_id)
    if instance is None or instance.state != state:
        return False  # done already, or superseded by another request
    if not instance.backend_id:
        return False
    backend = get_backend()
    try:
        getattr(backend, call)(instance.backend_id)
    except NotFound:
        machine_lost(instance)
        return False
    except CapacityError:
        if call != "start":
            raise
        with suppress(IllegalTransition):
            lifecycle.mark_stopped(
                instance_id,
                message=f"No free capacity to start it in {instance.region.name} right now; "
                "it stays stopped. Try again later.",
            )
        return False
    except InvalidState:
        # The machine is somewhere the action does not apply (e.g. reclaimed): take its state.
        with suppress(NotFound):
            apply_machine(instance, backend.get(instance.backend_id))
        return False
    return poll(instance_id)


def stop(instance_id: int) -> bool:
    return _machine_action(instance_id, State.STOPPING, "stop")


def start(instance_id: int) -> bool:
    return _machine_action(instance_id, State.STARTING, "start")


def reboot(instance_id: int) -> bool:
    return _machine_action(instance_id, State.REBOOTING, "reboot")


def terminate(instance_id: int) -> bool:
    instance = _load(instance_id)
    if instance is None or instance.state != State.TERMINATING:
        return False
    backend = get_backend()
    if not instance.backend_id:
        # Terminated before provisioning recorded a machine: the backend may still have made one.
        machine = next(
            (m for m in backend.list() if m.request_id == str(instance.request_id)), None
        )
        if machine is None:
            with suppress(IllegalTransition):
                lifecycle.mark_terminated(
                    instance_id, message="Terminated before the backend made a machine."
                )
            return False
        _record_backend_id(
            instance_id, machine.backend_id, message=f"Found machine {machine.backend_id}."
        )
        instance.refresh_from_db()
    backend.terminate(instance.backend_id)
    return poll(instance_id)


def resync(instance_id: int) -> bool:
    """Ask the backend about the machine and apply what it says (staff's "resync")."""
    instance = _load(instance_id)
    if instance is None:
        return False
    if not instance.backend_id:
        return DRIVERS[instance.state](instance_id) if instance.is_transitional else False
    backend = get_backend()
    try:
        machine = backend.get(instance.backend_id)
    except NotFound:
        if machine_lost(instance):
            return provision(instance_id)
        return False
    apply_machine(instance, machine, source="resync")
    instance.refresh_from_db()
    if instance.is_final and machine.state not in MACHINE_FINAL_STATES:
        backend.terminate(machine.backend_id)
    return instance.is_transitional


DRIVERS: dict[str, Callable[[int], bool]] = {
    State.PENDING: provision,
    State.PROVISIONING: provision,
    State.STOPPING: stop,
    State.STARTING: start,
    State.REBOOTING: poll,  # a second reboot call would reboot twice; just watch it
    State.TERMINATING: terminate,
}


def give_up(instance_id: int, *, step: str, error: Exception) -> None:
    """A task ran out of retries against a backend that keeps failing."""
    instance = _load(instance_id)
    if instance is None or instance.is_final:
        return
    if instance.state in (State.PENDING, State.PROVISIONING):
        _fail(
            instance_id,
            "Backfill could not reach the provisioning backend after several attempts "
            f"({error}). Nothing was billed.",
        )
        return
    InstanceEvent.objects.create(
        instance=instance,
        message=f"The backend did not answer ({error}); Backfill keeps trying.",
    )


# Reconciliation


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
            instance = _load(pk)
            if instance and instance.backend_id == backend_id and not instance.is_final:
                logger.warning("reconcile: backend lost %s of instance %s", backend_id, pk)
                if machine_lost(instance):
                    tasks.enqueue_provision(pk)
                    report.remade += 1
                else:
                    report.lost += 1

    # The fields reconciliation reads; the rest stays in the database (10,000 rows is a lot
    # of timestamps to parse). Instances by machine id first; by request id only for the
    # machines no instance has the id of (adoption, duplicates): not 10,000 ids twice over.
    # _in_step reads ssh_port and ssh_user too: a deferred one would cost a query per machine.
    fields = (
        *("backend_id", "request_id", "state", "state_changed_at", "ip", "reclaim_notified_at"),
        *("ssh_port", "ssh_user", "ssh_sudo", "cluster_id", "synced_at"),
    )
    by_backend = {
        i.backend_id: i for i in Instance.objects.filter(backend_id__in=list(listed)).only(*fields)
    }
    unknown = (m.request_id for m in machines if m.backend_id not in by_backend)
    request_ids = [u for u in (_request_uuid(r) for r in unknown) if u]
    by_request = {
        str(i.request_id): i
        for i in (
            Instance.objects.filter(request_id__in=request_ids).only(*fields) if request_ids else []
        )
    }

    in_step: list[int] = []  # agreeing instances whose synced_at is due: only that to write
    for machine in machines:
        try:
            _reconcile_machine(machine, by_backend, by_request, started, backend, report, in_step)
        except Exception:  # one bad machine must not stop the others; the next run retries
            logger.exception("reconcile: could not reconcile machine %s", machine.backend_id)
            report.errors += 1
    # One UPDATE per 10,000 rather than one per machine.
    for first in range(0, len(in_step), 10_000):
        Instance.objects.filter(pk__in=in_step[first : first + 10_000]).exclude(
            state__in=FINAL_STATES
        ).update(synced_at=timezone.now())

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
        and (not machine.ip or (machine.ip == instance.ip and not _ssh_changed(instance, machine)))
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
        adopted = _record_backend_id(
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
        _note_reclaim(instance, machine)


def capacity_refresh() -> CapacitySnapshot:
    """Store what the backend has free now, for the launch page and the launch checks."""
    return capacity_snapshot_store(capacities=get_backend().capacity())
