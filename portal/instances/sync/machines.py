"""What the backend says of a machine, applied to its instance: state, address, SSH details, a
reclaim announced; and when a machine counts as lost."""

from __future__ import annotations

import logging
from collections import defaultdict
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from portal.instances import lifecycle, tasks
from portal.instances.conf import setting
from portal.instances.lifecycle import IllegalTransition
from portal.instances.lifecycle.apply import by_row
from portal.instances.models import (
    FINAL_STATES,
    Instance,
    InstanceEvent,
    State,
)
from portal.provisioning import (
    FINAL_STATES as MACHINE_FINAL_STATES,
)
from portal.provisioning import (
    CapacityError,
    Machine,
    MachineState,
    PermanentError,
)
from portal.volumes.selectors import volume_backend_ids_for_instance
from portal.web.sql import ReadBuiltOnce

logger = logging.getLogger(__name__)


# How fresh an agreeing instance's synced_at is kept: reconciliation rewrites it only once it
# is this old.
SYNCED_AT_RESOLUTION = timedelta(minutes=5)


def create_machine(backend, instance: Instance, *, volumes: bool = True) -> str | None:
    """The instance's own `create` (idempotent on its request id): the machine's backend id,
    or None when the backend has no capacity or refuses, which fails that instance alone. A
    transient error is the caller's to retry."""
    try:
        return backend.create(**create_arguments(instance, volumes=volumes))
    except PermanentError as exc:
        create_refused(instance, exc)
    return None


def create_arguments(instance: Instance, *, volumes: bool = True) -> dict[str, Any]:
    """What the backend's `create` is asked for `instance` (read here, in the caller's thread:
    the call itself may be made from another)."""
    return {
        "request_id": str(instance.request_id),
        "instance_type": instance.instance_type.code,
        "region": instance.region.code,
        "image": instance.image.code,
        "ssh_keys": [key["public_key"] for key in instance.ssh_keys],
        "name": instance.name,
        "preemptible": instance.preemptible,
        # Whose machine it is: its reservations (simulator), its Slurm account (slurm).
        "account": instance.organization.slug,
        **(_volumes_for(instance) if volumes else {}),
    }


def create_refused(instance: Instance, exc: PermanentError) -> None:
    """The backend had no capacity for `instance`, or refused it: that instance fails."""
    if isinstance(exc, CapacityError):
        fail_instance(
            instance.pk,
            f"No free capacity for {instance.instance_type.name} in {instance.region.name} "
            "right now. Nothing was billed; try another region or try again later.",
        )
    else:
        fail_instance(instance.pk, f"The backend refused to create the machine: {exc}")


def _volumes_for(instance: Instance) -> dict:
    """`volumes=[backend ids]` for a machine with volumes; nothing for one without, so that a
    driver without the volume capability is asked exactly as before."""
    ids = volume_backend_ids_for_instance(instance_id=instance.pk)
    return {"volumes": ids} if ids else {}


# Read at every poll and step of an instance: built once.
_INSTANCE = ReadBuiltOnce(
    lambda pk: Instance.objects.select_related(
        "instance_type", "region", "image", "organization"
    ).filter(pk=pk),
    pk=int,
)


def load_instance(instance_id: int) -> Instance | None:
    instance: Instance | None = _INSTANCE.first(pk=instance_id)
    return instance


def record_backend_id(instance_id: int, backend_id: str, *, message: str) -> bool:
    """Remember the machine's id, once: a conditional UPDATE is the claim. `launched_at` keeps
    the first machine's time when a lost one is made again (the settle deadline counts from it)."""
    with transaction.atomic():
        claimed = Instance.objects.filter(pk=instance_id, backend_id="").update(
            backend_id=backend_id, launched_at=Coalesce(F("launched_at"), Value(timezone.now()))
        )
        if claimed:
            InstanceEvent.objects.create(instance_id=instance_id, message=message)
    return bool(claimed)


def fail_instance(instance_id: int, reason: str) -> None:
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
    note_machine_reclaim(instance, machine)

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
    # One UPDATE: what the backend said of each machine, a field that differs set per row.
    told: dict[str, dict[int, Any]] = defaultdict(dict)
    for instance, machine in seen:
        for name, value in _facts(instance, machine).items():
            told[name][instance.pk] = value
    Instance.objects.filter(pk__in=[instance.pk for instance, _ in seen]).exclude(
        state__in=FINAL_STATES
    ).update(synced_at=now, **{name: by_row(name, values) for name, values in told.items()})
    for instance, machine in seen:
        note_machine_reclaim(instance, machine)

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
        if ssh_changed(instance, machine):
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


def ssh_changed(instance: Instance, machine: Machine) -> bool:
    return (machine.ssh_port, machine.ssh_user or "", machine.ssh_sudo) != (
        instance.ssh_port,
        instance.ssh_user,
        instance.ssh_sudo,
    )


def note_machine_reclaim(instance: Instance, machine: Machine) -> None:
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


def settle_deadline_passed(instance: Instance) -> bool:
    since = instance.launched_at or instance.created_at
    return timezone.now() - since > timedelta(seconds=setting("INSTANCE_SETTLE_TIMEOUT"))


# One function per task
