"""Notices on a running instance that are not transitions: a reclaim or stop announced for a
later time, called off, or a reclaim risk; each recorded and e-mailed once."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from portal.instances import signals
from portal.instances.models import (
    FINAL_STATES,
    Instance,
    InstanceEvent,
    State,
)
from portal.lib import metrics
from portal.notifications.services import notify


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


RECLAIM_RISK_MESSAGE = (
    "Reclaim risk elevated: the operator's own work is forecast to need this capacity within "
    "15 minutes. Save your work; a reclaim comes with notice."
)


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
            InstanceEvent.objects.create(instance_id=instance_id, message=RECLAIM_RISK_MESSAGE)
    return bool(claimed)


def note_reclaim_risk_many(instance_ids: list[int], *, at: datetime) -> set[int]:
    """`note_reclaim_risk` of several instances at once (a place's warnings of one report):
    the ids this call warned. The same rows and events; one locking read (in id order, as
    every batch locks), one UPDATE and one INSERT of events for all of them."""
    if not instance_ids:
        return set()
    with transaction.atomic():
        claimed = list(
            Instance.objects.select_for_update()
            .filter(pk__in=instance_ids, reclaim_risk_at__isnull=True, reclaim_at__isnull=True)
            .exclude(state__in=FINAL_STATES)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if claimed:
            Instance.objects.filter(pk__in=claimed).update(reclaim_risk_at=at)
            InstanceEvent.objects.bulk_create(
                InstanceEvent(instance_id=pk, message=RECLAIM_RISK_MESSAGE) for pk in claimed
            )
    return set(claimed)


def clear_reclaim_risk(instance_ids: list[int]) -> int:
    """The risk passed (or became a notice): the warning leaves the instance page."""
    return Instance.objects.filter(pk__in=instance_ids, reclaim_risk_at__isnull=False).update(
        reclaim_risk_at=None
    )
