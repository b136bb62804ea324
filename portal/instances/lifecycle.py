"""The instance lifecycle: one table of allowed transitions and one function per transition.

    pending → provisioning → running ⇄ (stopping → stopped → starting) → terminating → terminated
    plus failed (never became usable, or lost) and interrupted (a preemptible machine reclaimed)

Every function here locks the instance row (`select_for_update`) and checks the current state
against `TRANSITIONS` before it writes, so two workers running the same step cannot both apply
it: the second finds the instance already in the target state and does nothing (returns None).
A transition the table forbids raises `IllegalTransition`, whose message is written for the
customer. Each applied transition records an `InstanceEvent` and an audit entry, queues its
e-mail (the outbox of portal.notifications) and sends `signals.instance_state_changed` in its
transaction (billing meters on commit, webhooks write their deliveries); quota is released
exactly once, in the transaction that reaches a final state.

Nothing here talks to the backend: services ask for a change, tasks report what the backend did.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import celery
from django.db import transaction
from django.utils import timezone

from portal.accounts.models import User
from portal.audit.services import audit_record, audit_record_many
from portal.instances import signals
from portal.instances.models import (
    BILLED_STATES,
    FINAL_STATES,
    Instance,
    InstanceEvent,
    State,
)
from portal.lib import metrics
from portal.lib.errors import ApplicationError
from portal.notifications.services import notify
from portal.quotas.services import quota_release
from portal.volumes.services import volumes_detach, volumes_detach_many

logger = logging.getLogger(__name__)

S = State
TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.PROVISIONING, S.FAILED, S.TERMINATING}),
    S.PROVISIONING: frozenset({S.RUNNING, S.FAILED, S.INTERRUPTED, S.TERMINATING}),
    S.RUNNING: frozenset({S.STOPPING, S.REBOOTING, S.TERMINATING, S.FAILED, S.INTERRUPTED}),
    S.STOPPING: frozenset({S.STOPPED, S.TERMINATING, S.FAILED, S.INTERRUPTED}),
    S.STOPPED: frozenset({S.STARTING, S.TERMINATING, S.FAILED}),
    # A start the backend cannot place (no capacity) falls back to stopped.
    S.STARTING: frozenset({S.RUNNING, S.STOPPED, S.TERMINATING, S.FAILED, S.INTERRUPTED}),
    S.REBOOTING: frozenset({S.RUNNING, S.TERMINATING, S.FAILED, S.INTERRUPTED}),
    S.TERMINATING: frozenset({S.TERMINATED}),
    S.TERMINATED: frozenset(),
    S.FAILED: frozenset(),
    S.INTERRUPTED: frozenset(),
}

# What a customer may ask for, and the state the request moves the instance to. Whether an
# action is allowed follows from TRANSITIONS alone.
ACTIONS: dict[str, str] = {
    "stop": S.STOPPING,
    "start": S.STARTING,
    "reboot": S.REBOOTING,
    "terminate": S.TERMINATING,
}


class IllegalTransition(ApplicationError):
    def __init__(self, message: str):
        super().__init__(message, code="illegal_transition")


def allowed_actions(state: str) -> list[str]:
    return [action for action, target in ACTIONS.items() if target in TRANSITIONS[state]]


def states_allowing(action: str) -> list[str]:
    target = ACTIONS[action]
    return [state for state, targets in TRANSITIONS.items() if target in targets]


def refusal(instance: Instance, action: str) -> str:
    """Why `action` is refused in the instance's current state, for the customer."""
    allowed = ", ".join(State(s).label.lower() for s in states_allowing(action))
    return (
        f"You cannot {action} {instance.name} while it is {State(instance.state).label.lower()}; "
        f"{action} works on {allowed} instances."
    )


def path(from_state: str, to_state: str) -> list[str]:
    """The shortest chain of allowed transitions from one state to another ([] if none)."""
    if from_state == to_state:
        return []
    previous: dict[str, str] = {}
    queue = deque([from_state])
    while queue:
        state = queue.popleft()
        for following in sorted(TRANSITIONS[state]):
            if following in previous or following == from_state:
                continue
            previous[following] = state
            if following == to_state:
                steps = [following]
                while previous[steps[-1]] != from_state:
                    steps.append(previous[steps[-1]])
                return steps[::-1]
            queue.append(following)
    return []


@dataclass(frozen=True)
class Change:
    instance: Instance
    from_state: str
    event: InstanceEvent


# The fields `_transition` may set (besides its `updates`).
_TRANSITION_FIELDS = (
    "state",
    "state_changed_at",
    "state_reason",
    "running_seconds",
    "running_since",
    "terminated_at",
    "stop_at",
    "stop_reason",
    "ip",
    "quota_released_at",
)


def _transition(
    instance_id: int,
    to: str,
    *,
    message: str = "",
    reason: str | None = None,
    actor: User | None = None,
    actor_kind: str | None = None,
    at: datetime | None = None,
    updates: dict[str, Any] | None = None,
    email: Email | None = None,
) -> Change | None:
    """Move the instance to `to` if TRANSITIONS allows it from where it is now.

    Returns None if the instance is already in `to` (the step ran before); raises
    IllegalTransition if the table forbids the move.
    """
    now = timezone.now()
    at = min(at, now) if at else now
    with transaction.atomic():
        # With what the next step reads (the backend's create needs the image too), so that a
        # caller can go on with `Change.instance` instead of reading the row again.
        instance = (
            Instance.objects.select_for_update(of=("self",))
            .select_related("organization", "region", "instance_type", "image")
            .get(pk=instance_id)
        )
        if instance.state == to:
            return None
        from_state = instance.state
        if to not in TRANSITIONS[from_state]:
            raise IllegalTransition(
                f"{instance.name} cannot go from {State(from_state).label.lower()} "
                f"to {State(to).label.lower()}."
            )
        _apply(instance, to, now=now, at=at, reason=reason, updates=updates)
        if to in FINAL_STATES:
            _release_quota_once(instance, now)
            # Its volumes are free for the next machine; their data stays.
            volumes_detach(instance_id=instance.pk, at=at)
        # Only what a transition sets: the row is locked, the rest is as read.
        instance.save(update_fields=[*_TRANSITION_FIELDS, *(updates or {})])
        event = InstanceEvent.objects.create(
            instance=instance,
            at=at,
            from_state=from_state,
            to_state=to,
            message=message or reason or "",
            actor=actor,
        )
        audit_record(**_audit(instance, from_state, event, actor, actor_kind))
        # Billing meters on commit and webhooks write their deliveries here (their receivers).
        signals.instance_state_changed.send(
            sender=Instance, instance=instance, from_state=from_state, event=event
        )
        _mail(instance, from_state, email)
        transaction.on_commit(
            lambda: metrics.count_transition(region=instance.region.code, to_state=to)
        )
    logger.info("instance %s %s: %s -> %s %s", instance.pk, instance.name, from_state, to, message)
    return Change(instance=instance, from_state=from_state, event=event)


def _apply(
    instance: Instance,
    to: str,
    *,
    now: datetime,
    at: datetime,
    reason: str | None,
    updates: dict[str, Any] | None,
) -> None:
    """Set what the move to `to` changes on the locked instance (not saved here)."""
    from_state = instance.state
    instance.state = to
    instance.state_changed_at = now
    if reason is not None:
        instance.state_reason = reason
    # Billing follows the GPUs: from the second the instance runs to the second it stops.
    if from_state in BILLED_STATES and to not in BILLED_STATES and instance.running_since:
        instance.running_seconds += max(0, int((at - instance.running_since).total_seconds()))
        instance.running_since = None
    if to in BILLED_STATES and from_state not in BILLED_STATES:
        instance.running_since = at
    if from_state == State.RUNNING:  # an announced stop is moot once it stops running
        instance.stop_at, instance.stop_reason = None, ""
    if to in FINAL_STATES:
        instance.terminated_at = at
        instance.ip = None
    for field, value in (updates or {}).items():
        setattr(instance, field, value)


def _audit(
    instance: Instance,
    from_state: str,
    event: InstanceEvent,
    actor: User | None,
    actor_kind: str | None,
) -> dict[str, Any]:
    """The audit entry of an applied transition (`audit_record`'s arguments)."""
    return {
        "action": "instance.state_changed",
        "organization": instance.organization,
        "actor": actor,
        "actor_kind": actor_kind,
        "actor_label": None if actor is not None else _system_label(),
        "target": instance,
        "detail": {"from": from_state, "to": event.to_state, "message": event.message},
    }


def _mail(instance: Instance, from_state: str, email: Email | None) -> None:
    """Queue the transition's e-mail, if it has one. A cluster's nodes are told about as one,
    by the cluster's own e-mails."""
    if email is None or email.only_from not in (None, from_state) or instance.in_cluster:
        return
    if email.kind == "running":  # many launched at once: one e-mail (notify's batch)
        notify(
            "instance_running",
            instance_id=instance.pk,
            batch=f"org{instance.organization_id}-by{instance.created_by_id}",
            wait=RUNNING_MAIL_WAIT_SECONDS,
        )
    else:
        notify(f"instance_{email.kind}", instance_id=instance.pk)


@dataclass(frozen=True)
class Batch:
    """What `_transition_many` did: the applied changes, and the instances the table did not
    let move (another step moved them meanwhile; they are left as they are)."""

    changes: list[Change]
    refused: list[int]


def _transition_many(
    instance_ids: Iterable[int],
    to: str,
    *,
    message: str = "",
    messages: Mapping[int, str] | None = None,
    reason: str | None = None,
    actor: User | None = None,
    actor_kind: str | None = None,
    at: datetime | None = None,
    updates: Mapping[int, dict[str, Any]] | None = None,
    email: Email | None = None,
) -> Batch:
    """`_transition` for many instances at once (a cluster's nodes): the same rules, rows,
    events, audit entries, e-mails and webhooks, written set-wise.

    One locking read of all rows, one UPDATE per distinct set of values written (one for
    nodes that move alike), one INSERT of events and one of audit entries, and ONE signal,
    `signals.instances_state_changed`, with every change (billing meters them together on
    commit, webhooks write their deliveries in one INSERT). `messages` and `updates` are per
    instance id (a node's own "Running at <ip>."). An instance already in `to` is skipped;
    one whose state the table does not let go to `to` is left alone and listed in `refused`.
    """
    ids = sorted(set(instance_ids))
    now = timezone.now()
    at = min(at, now) if at else now
    messages = messages or {}
    updates = updates or {}
    with transaction.atomic():
        # Locked in id order, as every batch locks, so that two batches never deadlock.
        instances = list(
            Instance.objects.select_for_update(of=("self",))
            .select_related("organization", "region", "instance_type", "image")
            .filter(pk__in=ids)
            .order_by("pk")
        )
        moved: list[tuple[Instance, str]] = []
        refused: list[int] = []
        for instance in instances:
            if instance.state == to:
                continue
            if to not in TRANSITIONS[instance.state]:
                refused.append(instance.pk)
                continue
            from_state = instance.state
            _apply(instance, to, now=now, at=at, reason=reason, updates=updates.get(instance.pk))
            moved.append((instance, from_state))
        if not moved:
            return Batch(changes=[], refused=refused)
        if to in FINAL_STATES:
            ended = [instance for instance, _ in moved]
            _release_quota_of(ended, now)
            volumes_detach_many(instance_ids=[instance.pk for instance in ended], at=at)
        extra = sorted({field for values in updates.values() for field in values})
        _save_alike([instance for instance, _ in moved], [*_TRANSITION_FIELDS, *extra])
        events = InstanceEvent.objects.bulk_create(
            [
                InstanceEvent(
                    instance=instance,
                    at=at,
                    from_state=from_state,
                    to_state=to,
                    message=messages.get(instance.pk) or message or reason or "",
                    actor=actor,
                )
                for instance, from_state in moved
            ]
        )
        changes = [
            Change(instance=instance, from_state=from_state, event=event)
            for (instance, from_state), event in zip(moved, events, strict=True)
        ]
        audit_record_many(
            [_audit(c.instance, c.from_state, c.event, actor, actor_kind) for c in changes]
        )
        signals.instances_state_changed.send(sender=Instance, changes=changes)
        for change in changes:
            _mail(change.instance, change.from_state, email)
        regions = [change.instance.region.code for change in changes]

        def count() -> None:
            for code in regions:
                metrics.count_transition(region=code, to_state=to)

        transaction.on_commit(count)
    for change in changes:
        instance = change.instance
        text = change.event.message
        logger.info(
            "instance %s %s: %s -> %s %s", instance.pk, instance.name, change.from_state, to, text
        )
    if refused:
        logger.info("instances %s: cannot go to %s from where they are now", refused, to)
    return Batch(changes=changes, refused=refused)


def _save_alike(instances: list[Instance], fields: list[str]) -> None:
    """Write `fields` of the locked `instances`: one UPDATE per distinct set of values (the
    nodes of a cluster that move together share one; a head with its address has its own)."""
    alike: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for instance in instances:
        alike[tuple(getattr(instance, field) for field in fields)].append(instance.pk)
    for values, pks in alike.items():
        Instance.objects.filter(pk__in=pks).update(**dict(zip(fields, values, strict=True)))


# The "running" e-mail waits this long for the other instances of the same person that become
# running together, so that a launch of many makes one e-mail.
RUNNING_MAIL_WAIT_SECONDS = 5


def _system_label() -> str:
    """Who moved an instance when no person did: the Celery task running, if any."""
    task = celery.current_task
    name = getattr(task, "name", None) if task else None
    return name or "backfill"


def _release_quota_once(instance: Instance, now: datetime) -> None:
    """Give the GPUs back to the quota. The row is locked, so this runs once per instance."""
    if instance.quota_released_at is not None:
        return
    quota_release(
        organization=instance.organization,
        region=instance.region,
        gpu_model=instance.instance_type.gpu_model,
        gpus=instance.gpus,
        preemptible=instance.preemptible,
    )
    instance.quota_released_at = now


def _release_quota_of(instances: list[Instance], now: datetime) -> None:
    """`_release_quota_once` of many locked instances: one release per quota row they hold
    (a cluster's nodes: one)."""
    alike: dict[tuple[Any, ...], list[Instance]] = defaultdict(list)
    for instance in instances:
        if instance.quota_released_at is None:
            key = (
                instance.organization_id,
                instance.region_id,
                instance.instance_type.gpu_model_id,
                instance.preemptible,
            )
            alike[key].append(instance)
    for same in alike.values():
        first = same[0]
        quota_release(
            organization=first.organization,
            region=first.region,
            gpu_model=first.instance_type.gpu_model,
            gpus=sum(instance.gpus for instance in same),
            preemptible=first.preemptible,
        )
        for instance in same:
            instance.quota_released_at = now


@dataclass(frozen=True)
class Email:
    """The e-mail a transition sends (`instance_<kind>`), only when coming from `only_from`
    if that is set (the "ready" e-mail goes out once, when the instance first comes up)."""

    kind: str
    only_from: str | None = None


# One function per transition. `request_*` are what a customer (or staff) asks for; `mark_*` are
# what the backend reported. What each move sets is said once, by its `_to_*` (the arguments
# of `_transition`); the `*_many` functions make the same move for many instances at once.


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
    return _transition(instance_id, **_to_provisioning(message))


def mark_provisioning_many(instance_ids: Iterable[int], *, message: str = "") -> Batch:
    return _transition_many(instance_ids, **_to_provisioning(message))


def mark_running(
    instance_id: int, *, ip: str | None = None, message: str = "", at: datetime | None = None
) -> Change | None:
    return _transition(
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
    return _transition_many(
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
    return _transition(instance_id, **_to_stopping(message), actor=actor, actor_kind=actor_kind)


def request_stop_many(
    instance_ids: Iterable[int], *, actor: User | None = None, message: str = ""
) -> Batch:
    return _transition_many(instance_ids, **_to_stopping(message), actor=actor)


def mark_stopped(
    instance_id: int, *, message: str = "", at: datetime | None = None
) -> Change | None:
    return _transition(instance_id, **_to_stopped(message, at))


def mark_stopped_many(
    instance_ids: Iterable[int], *, message: str = "", at: datetime | None = None
) -> Batch:
    return _transition_many(instance_ids, **_to_stopped(message, at))


def request_start(
    instance_id: int, *, actor: User | None = None, message: str = ""
) -> Change | None:
    return _transition(instance_id, **_to_starting(message), actor=actor)


def request_start_many(
    instance_ids: Iterable[int], *, actor: User | None = None, message: str = ""
) -> Batch:
    return _transition_many(instance_ids, **_to_starting(message), actor=actor)


def request_reboot(
    instance_id: int, *, actor: User | None = None, message: str = ""
) -> Change | None:
    return _transition(instance_id, **_to_rebooting(message), actor=actor)


def request_reboot_many(
    instance_ids: Iterable[int], *, actor: User | None = None, message: str = ""
) -> Batch:
    return _transition_many(instance_ids, **_to_rebooting(message), actor=actor)


def request_terminate(
    instance_id: int,
    *,
    actor: User | None = None,
    message: str = "",
    reason: str | None = None,
    actor_kind: str | None = None,
) -> Change | None:
    """`reason` (staff terminating with a reason) is kept as the state reason the customer sees."""
    return _transition(
        instance_id, **_to_terminating(message, reason), actor=actor, actor_kind=actor_kind
    )


def request_terminate_many(
    instance_ids: Iterable[int],
    *,
    actor: User | None = None,
    message: str = "",
    reason: str | None = None,
) -> Batch:
    return _transition_many(instance_ids, **_to_terminating(message, reason), actor=actor)


def mark_terminated(
    instance_id: int, *, message: str = "", at: datetime | None = None
) -> Change | None:
    return _transition(instance_id, **_to_terminated(message, at))


def mark_terminated_many(
    instance_ids: Iterable[int], *, message: str = "", at: datetime | None = None
) -> Batch:
    return _transition_many(instance_ids, **_to_terminated(message, at))


def mark_failed(instance_id: int, *, reason: str, at: datetime | None = None) -> Change | None:
    return _transition(instance_id, **_to_failed(reason, at))


def mark_failed_many(
    instance_ids: Iterable[int], *, reason: str, at: datetime | None = None
) -> Batch:
    return _transition_many(instance_ids, **_to_failed(reason, at))


def mark_interrupted(
    instance_id: int, *, at: datetime | None = None, reason: str = ""
) -> Change | None:
    """The operator took the preemptible machine back; billing stops at `at`."""
    return _transition(instance_id, **_to_interrupted(reason, at))


def mark_interrupted_many(
    instance_ids: Iterable[int], *, at: datetime | None = None, reason: str = ""
) -> Batch:
    return _transition_many(instance_ids, **_to_interrupted(reason, at))


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
    instances that are in the same state walked together: one `_transition_many` per step.
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
                batch = _transition_many(group, **_STEP_MOVES[step](**kwargs))
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


def note_reclaim(instance_id: int, *, reclaim_at: datetime, reason: str = "") -> bool:
    """The operator announced it will take this preemptible instance back at `reclaim_at`.

    Not a transition: the instance keeps running until then. Recorded and e-mailed once
    (a conditional UPDATE claims the notice); returns whether this call did it. `reason`
    (why its capacity is needed) goes on the instance's timeline.
    """
    with transaction.atomic():
        claimed = Instance.objects.filter(pk=instance_id, reclaim_notified_at__isnull=True).update(
            reclaim_at=reclaim_at, reclaim_notified_at=timezone.now()
        )
        if not claimed:
            return False
        instance = Instance.objects.get(pk=instance_id)
        why = f" {reason}" if reason else ""
        InstanceEvent.objects.create(
            instance=instance,
            message=f"The operator will reclaim this instance at {reclaim_at:%H:%M:%S} UTC.{why}"[
                :500
            ],
        )
        if not instance.in_cluster:
            notify("instance_reclaim_notice", instance_id=instance.pk)
        signals.instance_reclaim_noticed.send(sender=Instance, instance=instance)
        transaction.on_commit(metrics.RECLAIM_NOTICES.labels(region=instance.region.code).inc)
    return True


def note_stop(instance_id: int, *, stop_at: datetime, reason: str) -> bool:
    """A rule of the organization's (a budget's hard limit) will stop this running instance at
    `stop_at`. Not a transition: it runs until then, its page says so and why. Claimed by a
    conditional UPDATE, so a notice is given once; returns whether this call gave it."""
    with transaction.atomic():
        claimed = Instance.objects.filter(
            pk=instance_id, state=State.RUNNING, stop_at__isnull=True
        ).update(stop_at=stop_at, stop_reason=reason[:300])
        if claimed:
            InstanceEvent.objects.create(
                instance_id=instance_id,
                message=(
                    f"Backfill will stop this instance at {stop_at:%H:%M:%S} UTC: {reason} "
                    "Its disk is kept."
                )[:500],
            )
    return bool(claimed)


def cancel_stop(instance_ids: list[int], *, message: str) -> list[int]:
    """The rule no longer holds (the budget was raised): the announced stops are off. Returns
    the instances whose stop was called off."""
    with transaction.atomic():
        pending = list(
            Instance.objects.select_for_update()
            .filter(pk__in=instance_ids, stop_at__isnull=False)
            .values_list("pk", flat=True)
        )
        Instance.objects.filter(pk__in=pending).update(stop_at=None, stop_reason="")
        InstanceEvent.objects.bulk_create(
            InstanceEvent(instance_id=pk, message=message[:500]) for pk in pending
        )
    return pending


def cancel_reclaim(instance_id: int, *, message: str) -> bool:
    """A reclaim announced for this instance is off (a price reclaim whose bid was raised):
    it runs on, and a later reclaim gets its own notice. Returns whether one was pending."""
    with transaction.atomic():
        cleared = (
            Instance.objects.filter(pk=instance_id, reclaim_at__isnull=False)
            .exclude(state__in=FINAL_STATES)
            .update(reclaim_at=None, reclaim_notified_at=None)
        )
        if cleared:
            InstanceEvent.objects.create(instance_id=instance_id, message=message[:500])
    return bool(cleared)


def note_reclaim_risk(instance_id: int, *, at: datetime) -> bool:
    """The portal forecasts that the operator may need this preemptible instance's GPUs soon
    ("reclaim risk elevated"). Not a notice: nothing ends. Recorded once per risk period on
    the instance's timeline; returns whether this call did it (the caller fires the webhook)."""
    with transaction.atomic():
        claimed = (
            Instance.objects.filter(
                pk=instance_id, reclaim_risk_at__isnull=True, reclaim_at__isnull=True
            )
            .exclude(state__in=FINAL_STATES)
            .update(reclaim_risk_at=at)
        )
        if claimed:
            InstanceEvent.objects.create(
                instance_id=instance_id,
                message="Reclaim risk elevated: the operator's own work is forecast to need "
                "this capacity within 15 minutes. Save your work; a reclaim comes with notice.",
            )
    return bool(claimed)


def clear_reclaim_risk(instance_ids: list[int]) -> int:
    """The risk passed (or became a notice): the warning leaves the instance page."""
    return Instance.objects.filter(pk__in=instance_ids, reclaim_risk_at__isnull=False).update(
        reclaim_risk_at=None
    )
