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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import celery
from django.db import transaction
from django.utils import timezone

from portal.accounts.models import User
from portal.audit.services import audit_record
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
from portal.volumes.services import volumes_detach

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
            _release_quota_once(instance, now)
            # Its volumes are free for the next machine; their data stays.
            volumes_detach(instance_id=instance.pk, at=at)
        for field, value in (updates or {}).items():
            setattr(instance, field, value)
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
        audit_record(
            action="instance.state_changed",
            organization=instance.organization,
            actor=actor,
            actor_kind=actor_kind,
            actor_label=None if actor is not None else _system_label(),
            target=instance,
            detail={"from": from_state, "to": to, "message": event.message},
        )
        # Billing meters on commit and webhooks write their deliveries here (their receivers).
        signals.instance_state_changed.send(
            sender=Instance, instance=instance, from_state=from_state, event=event
        )
        # A cluster's nodes are told about as one, by the cluster's own e-mails.
        if email is not None and email.only_from in (None, from_state) and not instance.in_cluster:
            if email.kind == "running":  # many launched at once: one e-mail (notify's batch)
                notify(
                    "instance_running",
                    instance_id=instance.pk,
                    batch=f"org{instance.organization_id}-by{instance.created_by_id}",
                    wait=RUNNING_MAIL_WAIT_SECONDS,
                )
            else:
                notify(f"instance_{email.kind}", instance_id=instance.pk)
        transaction.on_commit(
            lambda: metrics.count_transition(region=instance.region.code, to_state=to)
        )
    logger.info("instance %s %s: %s -> %s %s", instance.pk, instance.name, from_state, to, message)
    return Change(instance=instance, from_state=from_state, event=event)


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


@dataclass(frozen=True)
class Email:
    """The e-mail a transition sends (`instance_<kind>`), only when coming from `only_from`
    if that is set (the "ready" e-mail goes out once, when the instance first comes up)."""

    kind: str
    only_from: str | None = None


# One function per transition. `request_*` are what a customer (or staff) asks for; `mark_*` are
# what the backend reported.


def mark_provisioning(instance_id: int, *, message: str = "") -> Change | None:
    return _transition(
        instance_id, S.PROVISIONING, message=message or "Asking the backend for a machine."
    )


def mark_running(
    instance_id: int, *, ip: str | None = None, message: str = "", at: datetime | None = None
) -> Change | None:
    # The "ready" e-mail goes out once, when the instance first comes up.
    return _transition(
        instance_id,
        S.RUNNING,
        message=message or (f"Running at {ip}." if ip else "Running."),
        reason="",
        at=at,
        updates={"ip": ip} if ip else None,
        email=Email("running", only_from=S.PROVISIONING),
    )


def request_stop(
    instance_id: int,
    *,
    actor: User | None = None,
    message: str = "",
    actor_kind: str | None = None,
) -> Change | None:
    return _transition(
        instance_id,
        S.STOPPING,
        actor=actor,
        actor_kind=actor_kind,
        message=message or "Stop requested.",
    )


def mark_stopped(
    instance_id: int, *, message: str = "", at: datetime | None = None
) -> Change | None:
    return _transition(
        instance_id, S.STOPPED, message=message or "Stopped; the GPUs are released.", at=at
    )


def request_start(
    instance_id: int, *, actor: User | None = None, message: str = ""
) -> Change | None:
    return _transition(
        instance_id, S.STARTING, actor=actor, reason="", message=message or "Start requested."
    )


def request_reboot(
    instance_id: int, *, actor: User | None = None, message: str = ""
) -> Change | None:
    return _transition(
        instance_id, S.REBOOTING, actor=actor, message=message or "Reboot requested."
    )


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
        instance_id,
        S.TERMINATING,
        actor=actor,
        actor_kind=actor_kind,
        reason=reason,
        message=message or "Termination requested.",
    )


def mark_terminated(
    instance_id: int, *, message: str = "", at: datetime | None = None
) -> Change | None:
    return _transition(instance_id, S.TERMINATED, message=message or "Terminated.", at=at)


def mark_failed(instance_id: int, *, reason: str, at: datetime | None = None) -> Change | None:
    return _transition(
        instance_id, S.FAILED, reason=reason, message=reason, at=at, email=Email("failed")
    )


def mark_interrupted(
    instance_id: int, *, at: datetime | None = None, reason: str = ""
) -> Change | None:
    """The operator took the preemptible machine back; billing stops at `at`."""
    return _transition(
        instance_id,
        S.INTERRUPTED,
        reason=reason or "Reclaimed by the operator: its capacity was needed.",
        at=at,
        email=Email("interrupted"),
    )


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
        kwargs: dict[str, Any] = {}
        if step == S.RUNNING:
            kwargs = {"ip": ip, "message": f"{message} Running at {ip}." if ip else message}
        elif step == S.FAILED:
            kwargs = {"reason": reason or message, "at": at}
        elif step == S.INTERRUPTED:
            kwargs = {"reason": reason, "at": at}
        else:
            kwargs = {"message": message}
        try:
            change = STEPS[step](instance_id, **kwargs)
        except IllegalTransition:
            break  # someone else moved it meanwhile; the next sync looks again
        if change is not None:
            changes.append(change)
    return changes


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
