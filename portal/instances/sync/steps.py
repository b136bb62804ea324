"""One step of an instance with the backend, as its Celery task runs it: provision, poll, stop,
start, reboot, terminate, resync; and giving up after the retries."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress

from portal.instances import lifecycle
from portal.instances.conf import setting
from portal.instances.lifecycle import IllegalTransition
from portal.instances.models import (
    Instance,
    InstanceEvent,
    State,
)
from portal.instances.sync.machines import (
    apply_machine,
    create_machine,
    fail_instance,
    load_instance,
    machine_lost,
    record_backend_id,
    settle_deadline_passed,
)
from portal.provisioning import (
    FINAL_STATES as MACHINE_FINAL_STATES,
)
from portal.provisioning import (
    CapacityError,
    InvalidState,
    NotFound,
    get_backend,
)

logger = logging.getLogger(__name__)


def provision(instance_id: int) -> bool:
    """Create the machine (idempotent on the request id), then look at it once."""
    # Straight to the transition, which reads the row under its lock with the type, region,
    # image and organization the create below needs. Only a pending instance moves; for any
    # other (a second run, a terminated one) it changes nothing and the row is read here.
    change = None
    with suppress(IllegalTransition, Instance.DoesNotExist):
        change = lifecycle.mark_provisioning(instance_id)
    instance = change.instance if change is not None else load_instance(instance_id)
    if instance is None:
        return False
    if instance.state != State.PROVISIONING:
        return False  # terminated meanwhile, or another run got further; its task owns it
    if instance.in_cluster:
        return False  # a cluster's nodes are made together, by the cluster's task
    backend = get_backend()  # one driver (and its HTTP session) for the create and the look
    if not instance.backend_id:
        backend_id = create_machine(backend, instance)
        if backend_id is None:
            return False
        record_backend_id(
            instance_id, backend_id, message=f"The backend made machine {backend_id}."
        )
        instance = load_instance(instance_id)  # fresh, and what the poll below looks at
        if instance is None or instance.state not in (State.PENDING, State.PROVISIONING):
            # Terminated while the machine was being made: do not leave it behind.
            backend.terminate(backend_id)
            return False
    return _poll(instance, backend)


def poll(instance_id: int) -> bool:
    """Look at the machine once and apply what changed."""
    return _poll(load_instance(instance_id))


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
    if instance.state == State.PROVISIONING and settle_deadline_passed(instance):
        minutes = setting("INSTANCE_SETTLE_TIMEOUT") // 60
        fail_instance(instance_id, f"The machine did not become ready within {minutes} minutes.")
        backend.terminate(instance.backend_id)
        return False
    return instance.is_transitional


def _machine_action(instance_id: int, state: str, call: str) -> bool:
    instance = load_instance(instance_id)
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
    instance = load_instance(instance_id)
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
        record_backend_id(
            instance_id, machine.backend_id, message=f"Found machine {machine.backend_id}."
        )
        instance.refresh_from_db()
    backend.terminate(instance.backend_id)
    # As loaded above (a transition re-reads the row under its lock): no second read.
    return _poll(instance, backend)


def resync(instance_id: int) -> bool:
    """Ask the backend about the machine and apply what it says (staff's "resync")."""
    instance = load_instance(instance_id)
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
    instance = load_instance(instance_id)
    if instance is None or instance.is_final:
        return
    if instance.state in (State.PENDING, State.PROVISIONING):
        fail_instance(
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
