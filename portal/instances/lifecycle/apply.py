"""Applying a transition: lock, check against the table, write the state, its event, audit
entry and e-mail, release quota once, and signal; for one instance or many at once."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import celery
from django.db import connection, transaction
from django.db.models import F, Field
from django.db.models.expressions import RawSQL
from django.utils import timezone

from portal.accounts.models import User
from portal.audit.services import audit_record, audit_record_many
from portal.instances import signals
from portal.instances.lifecycle.table import TRANSITIONS, IllegalTransition
from portal.instances.models import (
    BILLED_STATES,
    FINAL_STATES,
    Instance,
    InstanceEvent,
    State,
)
from portal.lib import logcontext, metrics
from portal.notifications.services import notify, notify_many
from portal.quotas.services import quota_release
from portal.volumes.services import volumes_detach, volumes_detach_many
from portal.web.sql import Among, ReadBuiltOnce

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    instance: Instance
    from_state: str
    event: InstanceEvent


# The fields `transition` may set (besides its `updates`).
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


# The locking reads of every transition, built once (a launch makes two transitions, each
# a compile of these joins otherwise): the row with what the next step reads.
_LOCKED_ONE = ReadBuiltOnce(
    lambda pk: (
        Instance.objects.select_for_update(of=("self",))
        .select_related("organization", "region", "instance_type__gpu_model", "image")
        .filter(pk=pk)
    ),
    pk=int,
)
_LOCKED_MANY = ReadBuiltOnce(
    lambda ids: (
        Instance.objects.select_for_update(of=("self",))
        .select_related("organization", "region", "instance_type", "image")
        .filter(Among(F("pk"), ids))
        .order_by("pk")
    ),
    ids=list,
)


def transition(
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
        # With what the next step reads (the backend's create needs the image too; a final
        # state's quota release, the GPU model), so that a caller can go on with
        # `Change.instance` instead of reading the row again.
        instance: Instance = _LOCKED_ONE.get(pk=instance_id)
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


def _mailed(instance: Instance, from_state: str, email: Email | None) -> bool:
    """Whether the transition has an e-mail. A cluster's nodes are told about as one, by the
    cluster's own e-mails."""
    return email is not None and email.only_from in (None, from_state) and not instance.in_cluster


def _running_batch(instance: Instance) -> str:
    """Many launched at once: one e-mail (notify's batch) per organization and person."""
    return f"org{instance.organization_id}-by{instance.created_by_id}"


def _mail(instance: Instance, from_state: str, email: Email | None) -> None:
    """Queue the transition's e-mail, if it has one."""
    if email is None or not _mailed(instance, from_state, email):
        return
    if email.kind == "running":
        notify(
            "instance_running",
            instance_id=instance.pk,
            batch=_running_batch(instance),
            wait=RUNNING_MAIL_WAIT_SECONDS,
        )
    else:
        notify(f"instance_{email.kind}", instance_id=instance.pk)


def _mail_many(changes: list[Change], email: Email | None) -> None:
    """`_mail` of each change; the running e-mails of each batch in one INSERT."""
    if email is None or email.kind != "running":
        for change in changes:
            _mail(change.instance, change.from_state, email)
        return
    batches: dict[str, list[dict[str, Any]]] = {}
    for change in changes:
        if _mailed(change.instance, change.from_state, email):
            batch = batches.setdefault(_running_batch(change.instance), [])
            batch.append({"instance_id": change.instance.pk})
    for key, params in batches.items():
        notify_many("instance_running", params, batch=key, wait=RUNNING_MAIL_WAIT_SECONDS)


@dataclass(frozen=True)
class Batch:
    """What `transition_many` did: the applied changes, and the instances the table did not
    let move (another step moved them meanwhile; they are left as they are)."""

    changes: list[Change]
    refused: list[int]


def transition_many(
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
    """`transition` for many instances at once (a cluster's nodes): the same rules, rows,
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
        instances = _LOCKED_MANY.objects(ids=ids)
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
        _mail_many(changes, email)
        regions = [change.instance.region.code for change in changes]

        def count() -> None:
            for code in regions:
                metrics.count_transition(region=code, to_state=to)

        transaction.on_commit(count)
    for change in changes:
        instance = change.instance
        text = change.event.message
        with logcontext.bound(instance.log_context):  # each under the request that launched it
            logger.info(
                "instance %s %s: %s -> %s %s",
                *(instance.pk, instance.name, change.from_state, to, text),
            )
    if refused:
        logger.info("instances %s: cannot go to %s from where they are now", refused, to)
    return Batch(changes=changes, refused=refused)


def _save_alike(instances: list[Instance], fields: list[str]) -> None:
    """Write `fields` of the locked `instances` in one UPDATE: a field with the same value on
    all of them set once, one whose values differ (each node's or launch's own address) set
    per row by a CASE on the id."""
    if not instances:
        return
    common: dict[str, Any] = {}
    for field in fields:
        values = {_hashable(getattr(instance, field)) for instance in instances}
        if len(values) == 1:
            common[field] = getattr(instances[0], field)
        else:
            common[field] = by_row(
                field, {instance.pk: getattr(instance, field) for instance in instances}
            )
    Instance.objects.filter(pk__in=[instance.pk for instance in instances]).update(**common)


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, dict | list) else value


def by_row(field: str, values: Mapping[int, Any]) -> RawSQL:
    """An UPDATE's value of `field` that differs per instance id (the rest keep theirs):
    `CASE "id" WHEN %s THEN %s::<type> ... ELSE "<column>" END`, written directly (Django's
    Case and When cost about as much per row as the UPDATEs they save)."""
    output = Instance._meta.get_field(field)
    assert isinstance(output, Field)
    quote = connection.ops.quote_name
    cast = output.db_type(connection)
    params: list[Any] = []
    for pk, value in values.items():
        params += [pk, output.get_db_prep_save(value, connection)]
    whens = " ".join([f"WHEN %s THEN %s::{cast}"] * len(values))
    pk_column = quote(Instance._meta.pk.column)
    sql = f"CASE {pk_column} {whens} ELSE {quote(output.column)} END"
    # The names come from the model; every value is a parameter.
    return RawSQL(sql, params, output_field=output)  # noqa: S611


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
# of `transition`); the `*_many` functions make the same move for many instances at once.
