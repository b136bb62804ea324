"""One function per transition, for one instance and for many (`*_many`), and catching up
with what the backend reports (`catch_up`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from portal.accounts.models import User
from portal.instances.lifecycle.apply import Batch, Change, Email, transition, transition_many
from portal.instances.lifecycle.table import IllegalTransition, S, path
from portal.instances.models import (
    Instance,
)

# One function per transition. `request_*` are what a customer (or staff) asks for; `mark_*` are
# what the backend reported. What each move sets is said once, by its `_to_*` (the arguments
# of `transition`); the `*_many` functions make the same move for many instances at once.


def _to_provisioning(message: str = "") -> dict[str, Any]:
    return {"to": S.PROVISIONING, "message": message or "Asking the backend for a machine."}


def _to_running(
    message: str = "", ip: str | None = None, at: datetime | None = None
) -> dict[str, Any]:
    # The "ready" e-mail goes out once, when the instance first comes up.
    return {
        "to": S.RUNNING,
        "message": message or (f"Running at {ip}." if ip else "Running."),
        "reason": "",
        "at": at,
        "email": Email("running", only_from=S.PROVISIONING),
    }


def _to_stopping(message: str = "") -> dict[str, Any]:
    return {"to": S.STOPPING, "message": message or "Stop requested."}


def _to_stopped(message: str = "", at: datetime | None = None) -> dict[str, Any]:
    return {"to": S.STOPPED, "message": message or "Stopped; the GPUs are released.", "at": at}


def _to_starting(message: str = "") -> dict[str, Any]:
    return {"to": S.STARTING, "reason": "", "message": message or "Start requested."}


def _to_rebooting(message: str = "") -> dict[str, Any]:
    return {"to": S.REBOOTING, "message": message or "Reboot requested."}


def _to_terminating(message: str = "", reason: str | None = None) -> dict[str, Any]:
    return {"to": S.TERMINATING, "reason": reason, "message": message or "Termination requested."}


def _to_terminated(message: str = "", at: datetime | None = None) -> dict[str, Any]:
    return {"to": S.TERMINATED, "message": message or "Terminated.", "at": at}


def _to_failed(reason: str, at: datetime | None = None) -> dict[str, Any]:
    return {"to": S.FAILED, "reason": reason, "message": reason, "at": at, "email": Email("failed")}


def _to_interrupted(reason: str = "", at: datetime | None = None) -> dict[str, Any]:
    return {
        "to": S.INTERRUPTED,
        "reason": reason or "Reclaimed by the operator: its capacity was needed.",
        "at": at,
        "email": Email("interrupted"),
    }


def mark_provisioning(instance_id: int, *, message: str = "") -> Change | None:
    return transition(instance_id, **_to_provisioning(message))


def mark_provisioning_many(instance_ids: Iterable[int], *, message: str = "") -> Batch:
    return transition_many(instance_ids, **_to_provisioning(message))


def mark_running(
    instance_id: int, *, ip: str | None = None, message: str = "", at: datetime | None = None
) -> Change | None:
    return transition(
        instance_id, **_to_running(message, ip, at), updates={"ip": ip} if ip else None
    )


def mark_running_many(
    ips: Mapping[int, str | None],
    *,
    messages: Mapping[int, str] | None = None,
    at: datetime | None = None,
) -> Batch:
    """`mark_running` of each instance id in `ips` with its address (None: none), and its
    message from `messages` if given."""
    messages = messages or {}
    return transition_many(
        ips,
        **_to_running(at=at),
        messages={pk: _to_running(messages.get(pk, ""), ip)["message"] for pk, ip in ips.items()},
        updates={pk: {"ip": ip} for pk, ip in ips.items() if ip},
    )


def request_stop(
    instance_id: int,
    *,
    actor: User | None = None,
    message: str = "",
    actor_kind: str | None = None,
) -> Change | None:
    return transition(instance_id, **_to_stopping(message), actor=actor, actor_kind=actor_kind)


def request_stop_many(
    instance_ids: Iterable[int], *, actor: User | None = None, message: str = ""
) -> Batch:
    return transition_many(instance_ids, **_to_stopping(message), actor=actor)


def mark_stopped(
    instance_id: int, *, message: str = "", at: datetime | None = None
) -> Change | None:
    return transition(instance_id, **_to_stopped(message, at))


def mark_stopped_many(
    instance_ids: Iterable[int], *, message: str = "", at: datetime | None = None
) -> Batch:
    return transition_many(instance_ids, **_to_stopped(message, at))


def request_start(
    instance_id: int, *, actor: User | None = None, message: str = ""
) -> Change | None:
    return transition(instance_id, **_to_starting(message), actor=actor)


def request_start_many(
    instance_ids: Iterable[int], *, actor: User | None = None, message: str = ""
) -> Batch:
    return transition_many(instance_ids, **_to_starting(message), actor=actor)


def request_reboot(
    instance_id: int, *, actor: User | None = None, message: str = ""
) -> Change | None:
    return transition(instance_id, **_to_rebooting(message), actor=actor)


def request_reboot_many(
    instance_ids: Iterable[int], *, actor: User | None = None, message: str = ""
) -> Batch:
    return transition_many(instance_ids, **_to_rebooting(message), actor=actor)


def request_terminate(
    instance_id: int,
    *,
    actor: User | None = None,
    message: str = "",
    reason: str | None = None,
    actor_kind: str | None = None,
) -> Change | None:
    """`reason` (staff terminating with a reason) is kept as the state reason the customer sees."""
    return transition(
        instance_id, **_to_terminating(message, reason), actor=actor, actor_kind=actor_kind
    )


def request_terminate_many(
    instance_ids: Iterable[int],
    *,
    actor: User | None = None,
    message: str = "",
    reason: str | None = None,
) -> Batch:
    return transition_many(instance_ids, **_to_terminating(message, reason), actor=actor)


def mark_terminated(
    instance_id: int, *, message: str = "", at: datetime | None = None
) -> Change | None:
    return transition(instance_id, **_to_terminated(message, at))


def mark_terminated_many(
    instance_ids: Iterable[int], *, message: str = "", at: datetime | None = None
) -> Batch:
    return transition_many(instance_ids, **_to_terminated(message, at))


def mark_failed(instance_id: int, *, reason: str, at: datetime | None = None) -> Change | None:
    return transition(instance_id, **_to_failed(reason, at))


def mark_failed_many(
    instance_ids: Iterable[int], *, reason: str, at: datetime | None = None
) -> Batch:
    return transition_many(instance_ids, **_to_failed(reason, at))


def mark_interrupted(
    instance_id: int, *, at: datetime | None = None, reason: str = ""
) -> Change | None:
    """The operator took the preemptible machine back; billing stops at `at`."""
    return transition(instance_id, **_to_interrupted(reason, at))


def mark_interrupted_many(
    instance_ids: Iterable[int], *, at: datetime | None = None, reason: str = ""
) -> Batch:
    return transition_many(instance_ids, **_to_interrupted(reason, at))


# Which function applies which state when catching up with the backend.
STEPS: dict[str, Callable[..., Change | None]] = {
    S.PROVISIONING: mark_provisioning,
    S.RUNNING: mark_running,
    S.STOPPING: request_stop,
    S.STOPPED: mark_stopped,
    S.STARTING: request_start,
    S.REBOOTING: request_reboot,
    S.TERMINATING: request_terminate,
    S.TERMINATED: mark_terminated,
    S.FAILED: mark_failed,
    S.INTERRUPTED: mark_interrupted,
}


def _step_arguments(
    step: str, *, message: str, ip: str | None, reason: str, at: datetime | None
) -> dict[str, Any]:
    """What `catch_up` gives the function of `step` (besides the instance)."""
    if step == S.RUNNING:
        return {"ip": ip, "message": f"{message} Running at {ip}." if ip else message}
    if step == S.FAILED:
        return {"reason": reason or message, "at": at}
    if step == S.INTERRUPTED:
        return {"reason": reason, "at": at}
    return {"message": message}


def catch_up(
    instance_id: int,
    target: str,
    *,
    message: str,
    ip: str | None = None,
    reason: str = "",
    at: datetime | None = None,
) -> list[Change]:
    """Walk the instance to `target` through allowed transitions (a change nobody reported).

    Returns the applied changes; [] if the instance is there already or no path leads there
    (the backend lags behind a request the portal has made: the request wins).
    """
    instance = Instance.objects.only("state").get(pk=instance_id)
    changes: list[Change] = []
    for step in path(instance.state, target):
        kwargs = _step_arguments(step, message=message, ip=ip, reason=reason, at=at)
        try:
            change = STEPS[step](instance_id, **kwargs)
        except IllegalTransition:
            break  # someone else moved it meanwhile; the next sync looks again
        if change is not None:
            changes.append(change)
    return changes


def catch_up_many(
    ips: Mapping[int, str | None],
    target: str,
    *,
    message: str,
    reason: str = "",
    at: datetime | None = None,
) -> list[Change]:
    """`catch_up` of each instance id in `ips` (with its machine's address) to `target`, the
    instances that are in the same state walked together: one `transition_many` per step.
    An instance that some other step moved meanwhile stops where it is."""
    states = dict(Instance.objects.filter(pk__in=list(ips)).values_list("pk", "state"))
    from_same: dict[str, list[int]] = defaultdict(list)
    for pk, state in states.items():
        from_same[state].append(pk)
    changes: list[Change] = []
    for state, group in from_same.items():
        for step in path(state, target):
            if step == S.RUNNING:
                batch = mark_running_many(
                    {pk: ips[pk] for pk in group},
                    messages={
                        pk: _step_arguments(
                            step, message=message, ip=ips[pk], reason=reason, at=at
                        )["message"]
                        for pk in group
                    },
                )
            else:
                kwargs = _step_arguments(step, message=message, ip=None, reason=reason, at=at)
                batch = transition_many(group, **_STEP_MOVES[step](**kwargs))
            changes += batch.changes
            refused = set(batch.refused)
            group = [pk for pk in group if pk not in refused]
            if not group:
                break
    return changes


# The move of each step, given `catch_up`'s arguments for it (RUNNING: mark_running_many).
_STEP_MOVES: dict[str, Callable[..., dict[str, Any]]] = {
    S.PROVISIONING: _to_provisioning,
    S.STOPPING: _to_stopping,
    S.STOPPED: _to_stopped,
    S.STARTING: _to_starting,
    S.REBOOTING: _to_rebooting,
    S.TERMINATING: _to_terminating,
    S.TERMINATED: _to_terminated,
    S.FAILED: _to_failed,
    S.INTERRUPTED: _to_interrupted,
}
