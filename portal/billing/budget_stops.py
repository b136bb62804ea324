"""A budget's hard limit that stops running instances, with the notice a reclaim gives.

When spend reaches a hard limit whose owners chose "stop running instances", every running
instance is told when it will stop (`budget_stop_notice`): the reclaim notice (the policy's
window, never below the operator's minimum), on its page and timeline and in one e-mail to
the owners and billing members. At the end of the notice `budget_stops_due` stops them (disks
kept), unless the limit no longer holds: the budget was raised or the option turned off, in
which case the stops are called off, at once when the budget is saved.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction

from portal.audit.services import audit_record
from portal.billing import clock
from portal.billing.models import Budget, BudgetAlert
from portal.billing.periods import Month
from portal.billing.selectors import month_spend
from portal.instances import lifecycle
from portal.instances.models import Instance, State
from portal.instances.services import instance_stop_by_system
from portal.lib.errors import ApplicationError
from portal.notifications.services import notify
from portal.orgs.models import Organization
from portal.reclaims.services import min_notice_seconds, policy_get

SYSTEM = "budget_hard_limit"  # the actor in the audit log: "Backfill, budget hard limit"
REASON = "The monthly budget's hard limit was reached."
STOPPED = "Stopped: the monthly budget's hard limit was reached."
CALLED_OFF = "The stop is off: the budget was raised or its hard limit no longer stops instances."


def notice_seconds() -> int:
    """How long a budget stop is announced before it happens: the reclaim notice."""
    return max(policy_get().notice_seconds, min_notice_seconds())


def budget_stop_holds(organization: Organization, *, now: datetime | None = None) -> bool:
    """Whether the organization is at a hard limit set to stop running instances now."""
    budget = Budget.objects.filter(organization=organization).first()
    if budget is None or not (budget.hard_limit and budget.stop_instances):
        return False
    now = now or clock.now()
    return month_spend(organization=organization, month=Month.of(now), now=now) >= budget.amount


def budget_stop_notice(*, organization: Organization, alert: BudgetAlert) -> list[int]:
    """The hard limit is reached and stops instances: announce the stop of every running one
    and e-mail which, and when. Returns the ids of the instances given notice."""
    stop_at = clock.now() + timedelta(seconds=notice_seconds())
    running = Instance.objects.filter(organization=organization, state=State.RUNNING)
    noticed = [
        pk
        for pk in running.order_by("pk").values_list("pk", flat=True)
        if lifecycle.note_stop(pk, stop_at=stop_at, reason=REASON)
    ]
    audit_record(
        action="budget.instances_stop_noticed",
        organization=organization,
        actor_label=SYSTEM,
        target=alert,
        detail={
            "instances": noticed,
            "stop_at": stop_at.isoformat(),
            "spend": alert.spend,
            "budget": alert.budget_amount,
        },
    )
    notify(
        "budget_hard_limit_stopped",
        alert_id=alert.pk,
        instance_ids=noticed,
        stop_at=stop_at.isoformat(),
    )
    if noticed:
        from portal.billing import tasks

        organization_id = organization.pk
        transaction.on_commit(
            lambda: tasks.budget_stops_due.apply_async((organization_id,), eta=stop_at)
        )
    return noticed


def budget_stops_due(*, organization_id: int | None = None) -> list[int]:
    """Stop the instances whose budget stop notice is over, where the limit still holds; call
    off the announced stops where it does not. Idempotent: the task at the end of a notice and
    the periodic budget check (its safety net) may both run it. Returns the ids stopped."""
    now = clock.now()
    pending = Instance.objects.filter(stop_at__isnull=False, state=State.RUNNING)
    if organization_id is not None:
        pending = pending.filter(organization_id=organization_id)
    stopped: list[int] = []
    for organization in Organization.objects.filter(
        pk__in=pending.values("organization_id")
    ).order_by("pk"):
        theirs = pending.filter(organization=organization)
        if not budget_stop_holds(organization, now=now):
            lifecycle.cancel_stop(list(theirs.values_list("pk", flat=True)), message=CALLED_OFF)
            continue
        done = []
        for instance in theirs.filter(stop_at__lte=now).order_by("pk"):
            try:
                instance_stop_by_system(instance=instance, message=STOPPED, label=SYSTEM)
            except ApplicationError:  # it moved on meanwhile (stopping, ended)
                continue
            done.append(instance.pk)
        if done:
            audit_record(
                action="budget.instances_stopped",
                organization=organization,
                actor_label=SYSTEM,
                detail={"instances": done},
            )
        stopped += done
    return stopped
