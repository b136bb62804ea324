"""Reclaim orders: choose the victims by the policy, give each its notice, end them on time.

Entry points (all write in one transaction, under a lock on the policy row, so two reports of
the same shortfall never make two orders and an instance is never chosen twice):

- `reclaim_order_create`: a staff request ("return 16 H100 GPUs in us-east-1 by 14:00").
- `shortfall_report`: the backend's capacity report; a shortfall not yet covered by open
  orders becomes an order (called by the receiver of `capacity_snapshot_stored`, in a task).
- `reclaim_instances`: "give these instances notice with reason R, end them at T" (the spot
  market's price reclaim calls it).

Each victim gets its notice at once: the instance's timeline and page, the e-mail and the
`instance.interruption_notice` webhook (`instances.lifecycle.note_reclaim`); after the commit
a task tells the backend (`reclaim(machine, at)`), which puts the time on the machine's
metadata (or signals the Slurm job) and ends the machine at `at`. The order is tracked until
every victim has ended (`victim_ended`, from the instances' state signal).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from portal.audit.services import audit_record
from portal.capacity.selectors import demand_by_place
from portal.capacity.snapshot import CapacitySnapshot
from portal.catalog.models import GpuModel, Region
from portal.instances import lifecycle
from portal.instances.models import FINAL_STATES, Instance, State
from portal.lib.errors import ApplicationError
from portal.lib.money import format_price
from portal.reclaims import selectors
from portal.reclaims.models import (
    OrderState,
    ReclaimOrder,
    ReclaimPolicy,
    ReclaimVictim,
    Source,
)
from portal.web.sql import ReadBuiltOnce

logger = logging.getLogger(__name__)

# The most GPUs one staff order may ask for (a typo guard, far above any fleet).
MAX_ORDER_GPUS = 100_000
# A victim that ends within this much after its time still counts as on time (the backend
# reports the end at the second; the portal notices it on its next look).
ON_TIME_TOLERANCE = timedelta(seconds=2)
# Places whose ongoing shortfall an order that came up short has answered: (region code, GPU
# model code) -> the shortfall it said. Dropped when a report shows the place without one.
SAID_KEY = "reclaims:shortfall:said"
SAID_TIMEOUT = 3600  # a place no report mentions for an hour starts afresh


def min_notice_seconds() -> int:
    """The operator's minimum notice (RECLAIM_MIN_NOTICE_SECONDS, default 120 s)."""
    return int(getattr(settings, "RECLAIM_MIN_NOTICE_SECONDS", 120))


# The policy


def policy_get(*, lock: bool = False) -> ReclaimPolicy:
    """The one policy row (made with the defaults on first use); `lock` takes its row lock."""
    policy, _ = ReclaimPolicy.objects.get_or_create(pk=1)
    if lock:
        policy = ReclaimPolicy.objects.select_for_update().get(pk=1)
    return policy


def policy_check(
    *, notice_seconds: int, preemptible_only: bool, spare_reserved: bool, whole_machines: bool
) -> None:
    """Refuse a policy Backfill will not run, with the reason (ApplicationError)."""
    if not preemptible_only:
        raise ApplicationError(
            "Backfill never reclaims on-demand machines: they are sold as never reclaimed. "
            "Keep 'preemptible only'.",
            field="preemptible_only",
        )
    if not spare_reserved:
        raise ApplicationError(
            "Capacity held by a reservation is never reclaimed: the customer pays for it "
            "whether used or not. Keep 'never reclaim reserved capacity'.",
            field="spare_reserved",
        )
    if not whole_machines:
        raise ApplicationError(
            "An instance cannot be cut: reclaims take whole machines.", field="whole_machines"
        )
    _check_notice(notice_seconds, field="notice_seconds")


def _check_notice(notice_seconds: int, *, field: str) -> None:
    minimum = min_notice_seconds()
    if notice_seconds < minimum:
        raise ApplicationError(
            f"The notice window must be at least {minimum} seconds (the operator's minimum); "
            f"{notice_seconds} s is too short for customers to save their work.",
            field=field,
        )


def policy_update(
    *,
    by,
    notice_seconds: int,
    order: str,
    preemptible_only: bool = True,
    spare_reserved: bool = True,
    whole_machines: bool = True,
) -> ReclaimPolicy:
    policy_check(
        notice_seconds=notice_seconds,
        preemptible_only=preemptible_only,
        spare_reserved=spare_reserved,
        whole_machines=whole_machines,
    )
    with transaction.atomic():
        policy = policy_get(lock=True)
        before = {"notice_seconds": policy.notice_seconds, "order": policy.order}
        policy.notice_seconds = notice_seconds
        policy.order = order
        policy.updated_at = timezone.now()
        policy.updated_by = by
        policy.save()
        audit_record(
            action="reclaim.policy_changed",
            actor=by,
            actor_kind="staff",
            target=policy,
            detail={"before": before, "after": {"notice_seconds": notice_seconds, "order": order}},
        )
    return policy


# Orders


@dataclass(frozen=True)
class _Plan:
    now: datetime
    notice: int
    earliest: datetime
    end_at: datetime
    feasible: bool


def _plan(deadline: datetime | None, notice: int) -> _Plan:
    """When the victims end: the deadline, or the earliest time with full notice if that is
    later (or if there is no deadline: "as soon as the notice allows")."""
    now = timezone.now()
    # Whole seconds: a backend ends a machine to the second (Slurm's job script does).
    earliest = now + timedelta(seconds=notice)
    if earliest.microsecond:
        earliest = earliest.replace(microsecond=0) + timedelta(seconds=1)
    deadline = earliest if deadline is None else deadline
    feasible = deadline >= earliest
    end_at = max(deadline.replace(microsecond=0), earliest) if feasible else earliest
    return _Plan(now=now, notice=notice, earliest=earliest, end_at=end_at, feasible=feasible)


def _resolve(region: Region | str, gpu_model: GpuModel | str) -> tuple[Region, GpuModel]:
    if isinstance(region, str):
        found = Region.objects.filter(code=region).first()
        if found is None:
            raise ApplicationError(f"Unknown region {region!r}.", field="region")
        region = found
    if isinstance(gpu_model, str):
        model = GpuModel.objects.filter(code=gpu_model).first()
        if model is None:
            raise ApplicationError(f"Unknown GPU model {gpu_model!r}.", field="gpu_model")
        gpu_model = model
    return region, gpu_model


def reclaim_order_create(
    *,
    region: Region | str,
    gpu_model: GpuModel | str,
    gpus: int,
    deadline: datetime,
    by=None,
    reason: str = "",
    notice_seconds: int | None = None,
) -> ReclaimOrder:
    """A staff request: return `gpus` GPUs of the model in the region by `deadline`.

    Refused (ApplicationError, nothing changed): no GPUs or too many, an unknown region or
    model, a deadline in the past, a notice below the operator's minimum. Made, and saying so:
    a deadline too close for full notice (the victims end at the earliest time with full
    notice, which the order gives), more GPUs than the preemptible fleet holds (it returns
    what it can).
    """
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise ApplicationError("Ask for at least 1 GPU.", field="gpus")
    if gpus > MAX_ORDER_GPUS:
        raise ApplicationError(
            f"{gpus} GPUs is more than any fleet; ask for at most {MAX_ORDER_GPUS}.", field="gpus"
        )
    region, gpu_model = _resolve(region, gpu_model)
    if deadline <= timezone.now():
        raise ApplicationError(
            f"The deadline {deadline:%Y-%m-%d %H:%M:%S} UTC is in the past.", field="deadline"
        )
    with transaction.atomic():
        policy = policy_get(lock=True)
        notice = policy.notice_seconds if notice_seconds is None else notice_seconds
        _check_notice(notice, field="notice_seconds")
        return _order(
            policy=policy,
            region=region,
            gpu_model=gpu_model,
            gpus=gpus,
            deadline=deadline,
            notice=notice,
            source=Source.STAFF,
            by=by,
            reason=reason or "Requested by the operator's staff.",
        )


def _order(
    *,
    policy: ReclaimPolicy,
    region: Region,
    gpu_model: GpuModel,
    gpus: int,
    deadline: datetime | None,
    notice: int,
    source: str,
    by=None,
    reason: str,
    reported_shortfall: int | None = None,
    victims: list[selectors.Candidate] | None = None,
) -> ReclaimOrder:
    """Make the order, choose and notice its victims. Called with the policy row locked."""
    plan = _plan(deadline, notice)
    if victims is None:
        victims = selectors.reclaim_choose(
            candidates=selectors.reclaim_candidates_for_place(
                region=region, gpu_model=gpu_model, policy=policy
            ),
            gpus=gpus,
        )
    returnable = sum(c.gpus for c in victims)
    order = ReclaimOrder.objects.create(
        region=region,
        gpu_model=gpu_model,
        gpus=gpus,
        deadline=plan.end_at if deadline is None else deadline,
        source=source,
        reason=reason[:300],
        notice_seconds=notice,
        state=OrderState.OPEN if victims else OrderState.NOTHING,
        returnable_gpus=returnable,
        feasible=plan.feasible,
        earliest_at=plan.earliest,
        end_at=plan.end_at,
        reported_shortfall=reported_shortfall,
        created_at=plan.now,
        created_by=by,
    )
    order.summary = _summary(order, gpu_model)[:500]
    order.save(update_fields=["summary"])
    audit_record(
        action="reclaim.order_created",
        actor=by,
        actor_kind="staff" if by is not None else None,
        target=order,
        detail={
            "source": source,
            "region": region.code,
            "gpu_model": gpu_model.code,
            "gpus": gpus,
            "deadline": order.deadline.isoformat(),
            "notice_seconds": notice,
            "returnable_gpus": returnable,
            "feasible": plan.feasible,
            "victims": [c.instance.pk for c in victims],
        },
    )
    for rank, candidate in enumerate(victims, start=1):
        _notice(order, candidate, rank=rank, now=plan.now)
    if victims:
        pk = order.pk
        # A price reclaim may be cancelled during its notice (the customer raises the max
        # price), which the backend cannot undo: it hears of it only at the end of the notice
        # (and the minute sweep tells it of any it missed). Others are told at once. The
        # time of a price reclaim is on the machine at once all the same (a notice, which
        # can be withdrawn), so that its processes can checkpoint during the notice.
        eta = order.end_at if source == Source.PRICE else None
        transaction.on_commit(lambda: _tell_backend(pk, eta))
        if source == Source.PRICE:
            for candidate in victims:
                _sync_notice(candidate.instance.pk)
    return order


def _tell_backend(order_id: int, eta: datetime | None = None) -> None:
    from portal.reclaims import tasks

    if eta is None:
        tasks.reclaim_order_tell_backend.delay(order_id)
    else:
        tasks.reclaim_order_tell_backend.apply_async((order_id,), eta=eta)


def _sync_notice(instance_id: int) -> None:
    """After the commit: the machine's notice of a price reclaim, shown or taken off."""
    from portal.reclaims import tasks

    transaction.on_commit(lambda: tasks.reclaim_notice_sync.delay(instance_id))


def _summary(order: ReclaimOrder, gpu_model: GpuModel) -> str:
    parts = []
    what = f"{gpu_model.name} GPUs in {order.region.code}"
    if order.state == OrderState.NOTHING:
        parts.append(f"Nothing to reclaim: no preemptible instance holds {what}.")
    else:
        parts.append(
            f"Returns {order.returnable_gpus} of {order.gpus} {what} "
            f"at {order.end_at:%H:%M:%S} UTC after {order.notice_seconds} s notice."
        )
        if order.short_gpus:
            parts.append(
                f"Asked for more than the preemptible fleet holds: it can return only "
                f"{order.returnable_gpus} GPUs ({order.short_gpus} short)."
            )
    if not order.feasible:
        parts.append(
            f"The deadline {order.deadline:%H:%M:%S} UTC cannot be met with full notice; "
            f"the earliest time is {order.earliest_at:%H:%M:%S} UTC."
        )
    return " ".join(parts)


def _notice(order: ReclaimOrder, candidate: selectors.Candidate, *, rank: int, now) -> None:
    instance = candidate.instance
    ReclaimVictim.objects.create(
        order=order,
        instance=instance,
        rank=rank,
        gpus=candidate.gpus,
        price_per_hour=candidate.price,
        launched_at=instance.launched_at or instance.created_at,
        noticed_at=now,
        reclaim_at=order.end_at,
    )
    lifecycle.note_reclaim(instance.pk, reclaim_at=order.end_at, reason=order.reason)
    lifecycle.clear_reclaim_risk([instance.pk])
    audit_record(
        action="reclaim.victim_noticed",
        organization=instance.organization,
        actor_kind="system",
        actor_label="reclaims",
        target=instance,
        detail={
            "order": order.pk,
            "rank": rank,
            "gpus": candidate.gpus,
            "price_per_hour": str(candidate.price),
            "reclaim_at": order.end_at.isoformat(),
            "reason": order.reason,
        },
    )


def reclaim_instances(
    *, instances: Iterable[Instance], reason: str, at: datetime, source: str = Source.PRICE
) -> list[ReclaimOrder]:
    """Give these preemptible instances notice with `reason`, and end them at `at`.

    For callers that chose the instances themselves (the spot market: the price rose above
    their bid). `at` never gives less than the policy's notice window (itself never below the
    operator's minimum): an earlier time is moved to now + that window. On-demand instances,
    ended ones and ones already under a reclaim notice are left out. One order per region and
    GPU model; [] if none is left.
    """
    ids = [i.pk for i in instances]
    with transaction.atomic():
        policy = policy_get(lock=True)
        minimum = max(policy.notice_seconds, min_notice_seconds())
        now = timezone.now()
        # A time sooner than the notice allows means "as soon as it allows": no deadline of
        # its own, so the order is not marked as one that missed it by the milliseconds
        # between here and its planning.
        soonest = at <= now + timedelta(seconds=minimum)
        at = max(at, now + timedelta(seconds=minimum))
        notice = max(minimum, int((at - now).total_seconds()))
        by_place: dict[tuple[int, int], list[selectors.Candidate]] = defaultdict(list)
        for candidate in selectors.reclaim_candidates_for_ids(ids, policy=policy):
            instance = candidate.instance
            by_place[(instance.region_id, instance.instance_type.gpu_model_id)].append(candidate)
        orders = []
        for (region_id, gpu_model_id), victims in by_place.items():
            orders.append(
                _order(
                    policy=policy,
                    region=Region.objects.get(pk=region_id),
                    gpu_model=GpuModel.objects.get(pk=gpu_model_id),
                    gpus=sum(c.gpus for c in victims),
                    deadline=None if soonest else at,
                    notice=notice,
                    source=source,
                    reason=reason,
                    victims=victims,
                )
            )
        return orders


def shortfall_report(snapshot: CapacitySnapshot | None = None) -> list[ReclaimOrder]:
    """The backend's report: a shortfall not yet covered by open orders becomes an order.

    Two reports of the same demand make one order (the second finds it covered by the
    victims still under notice). A shortfall larger than the fleet is logged, audited and
    capped at the fleet. No candidates at all makes one "nothing to reclaim" order per
    shortfall, not one per report: while the shortfall lasts, only one larger than the one
    already said makes another (the operator's work easing off is no news).
    """
    orders = []
    said: dict = cache.get(SAID_KEY) or {}
    places = demand_by_place(snapshot)
    # A shortfall the GPUs under notice cover already (most reports of a lasting shortfall)
    # is read once for every place and skipped without the lock: skipping makes no order, so
    # two reports cannot make two. One not covered is read again under the lock.
    short = [key for key, place in places.items() if place.shortfall > 0]
    under_notice = selectors.gpus_under_notice_by_place() if short else {}
    for (region_code, model_code), place in sorted(places.items()):
        if place.shortfall <= 0:
            said.pop((region_code, model_code), None)
            continue
        if place.shortfall <= min(place.fleet, under_notice.get((region_code, model_code), 0)):
            continue
        try:
            region, gpu_model = _resolve(region_code, model_code)
        except ApplicationError:
            logger.warning("shortfall in %s %s: not in the catalog", region_code, model_code)
            continue
        shortfall = place.shortfall
        with transaction.atomic():
            policy = policy_get(lock=True)
            if shortfall > place.fleet:
                logger.warning(
                    "backend reports a shortfall of %s %s GPUs in %s, more than the fleet of %s: "
                    "capped",
                    shortfall,
                    model_code,
                    region_code,
                    place.fleet,
                )
                audit_record(
                    action="reclaim.shortfall_capped",
                    actor_kind="system",
                    actor_label="reclaims",
                    detail={
                        "region": region_code,
                        "gpu_model": model_code,
                        "reported": shortfall,
                        "fleet": place.fleet,
                    },
                )
                shortfall = place.fleet
            needed = shortfall - selectors.gpus_under_notice(region=region, gpu_model=gpu_model)
            if needed <= 0 or shortfall <= 0:
                continue
            if not selectors.reclaim_candidates_for_place(
                region=region, gpu_model=gpu_model, policy=policy
            ):
                # Nothing preemptible left: say so once per reported shortfall, not per report
                # (an earlier order that came up short has said it already).
                last = (
                    ReclaimOrder.objects.filter(
                        region=region, gpu_model=gpu_model, source=Source.BACKEND
                    )
                    .order_by("-created_at", "-id")
                    .first()
                )
                if said.get((region_code, model_code), 0) >= place.shortfall or (
                    last is not None
                    and last.reported_shortfall == place.shortfall
                    and (last.state == OrderState.NOTHING or last.short_gpus > 0)
                ):
                    continue
            notice = policy.notice_seconds
            orders.append(
                _order(
                    policy=policy,
                    region=region,
                    gpu_model=gpu_model,
                    gpus=needed,
                    deadline=None,  # as soon as the notice allows
                    notice=max(notice, min_notice_seconds()),
                    source=Source.BACKEND,
                    reason=f"The operator's own work needs {needed} {gpu_model.name} GPUs in "
                    f"{region.code}.",
                    reported_shortfall=place.shortfall,
                )
            )
            if orders[-1].state == OrderState.NOTHING or orders[-1].short_gpus > 0:
                said[(region_code, model_code)] = place.shortfall
    cache.set(SAID_KEY, said, timeout=SAID_TIMEOUT)
    return orders


# Tracking


def victim_backend_told(victim_id: int) -> None:
    with transaction.atomic():
        victim = ReclaimVictim.objects.select_related("instance__organization").get(pk=victim_id)
        if victim.backend_told_at is not None:
            return
        victim.backend_told_at = timezone.now()
        victim.save(update_fields=["backend_told_at"])
        audit_record(
            action="reclaim.backend_told",
            organization=victim.instance.organization,
            actor_kind="system",
            actor_label="reclaims",
            target=victim.instance,
            detail={"order": victim.order_id, "reclaim_at": victim.reclaim_at.isoformat()},
        )


# Asked at every instance's end: built once.
_OPEN_VICTIM = ReadBuiltOnce(
    lambda instance: ReclaimVictim.objects.select_for_update().filter(
        instance_id=instance, ended_at__isnull=True
    )[:1],  # first in the model's order
    instance=int,
)


def victim_ended(instance: Instance) -> None:
    """A victim reached a final state (interrupted at its time, or ended some other way).
    Inside a transition's transaction (its receiver) it takes no savepoint of its own: any
    instance that ends asks, and almost none is a victim."""
    with transaction.atomic(savepoint=False):
        victim = _OPEN_VICTIM.first(instance=instance.pk)
        if victim is None:
            return
        victim.ended_at = instance.terminated_at or timezone.now()
        victim.ended_state = instance.state
        victim.save(update_fields=["ended_at", "ended_state"])
        audit_record(
            action="reclaim.victim_ended",
            organization=instance.organization,
            actor_kind="system",
            actor_label="reclaims",
            target=instance,
            detail={
                "order": victim.order_id,
                "state": instance.state,
                "ended_at": victim.ended_at.isoformat(),
                "notice_seconds": victim.notice_given,
            },
        )
        order_check(victim.order_id)


def order_check(order_id: int) -> ReclaimOrder:
    """Close the order once every victim has ended: when the GPUs were free, and whether
    every victim ended by the deadline after its full notice."""
    order = ReclaimOrder.objects.select_for_update().get(pk=order_id)
    if order.state != OrderState.OPEN:
        return order
    victims = list(order.victims.all())
    if any(v.ended_at is None for v in victims):
        return order
    order.freed_at = max(v.ended_at for v in victims if v.ended_at is not None)
    order.met = order.feasible and all(_on_time(order, v) for v in victims)
    order.state = OrderState.DONE
    order.save(update_fields=["freed_at", "met", "state"])
    audit_record(
        action="reclaim.order_done",
        actor_kind="system",
        actor_label="reclaims",
        target=order,
        detail={
            "freed_at": order.freed_at.isoformat(),
            "met": order.met,
            "gpus": sum(v.gpus for v in victims),
        },
    )
    return order


def _on_time(order: ReclaimOrder, victim: ReclaimVictim) -> bool:
    """Whether the victim ended by the deadline after its full notice. One that its own
    customer terminated during the notice had it in full (nothing cut it short: they were done
    sooner), and its GPUs came back early."""
    if victim.ended_at is None or victim.ended_at > order.deadline + ON_TIME_TOLERANCE:
        return False
    full = victim.noticed_at + timedelta(seconds=order.notice_seconds) - ON_TIME_TOLERANCE
    return victim.ended_at >= full or victim.ended_state == State.TERMINATED


def price_reclaim_cancel(*, instance: Instance, max_price: Decimal | None) -> bool:
    """The customer raised the max price of an instance under a price reclaim's notice to the
    spot price or more: the reclaim is off, as long as the backend has not been told yet
    (until the end of the notice). Returns whether a reclaim was cancelled."""
    with transaction.atomic():
        victim = (
            ReclaimVictim.objects.select_for_update()
            .filter(
                instance_id=instance.pk,
                ended_at__isnull=True,
                backend_told_at__isnull=True,
                order__source=Source.PRICE,
            )
            .first()
        )
        if victim is None:
            return False
        order_id, reclaim_at = victim.order_id, victim.reclaim_at
        victim.delete()
        _sync_notice(instance.pk)  # off the machine's metadata
        lifecycle.cancel_reclaim(
            instance.pk,
            message=f"Reclaim at {reclaim_at:%H:%M:%S} UTC cancelled: the max price was raised to "
            + (
                f"{format_price(max_price, settings.CURRENCY)}."
                if max_price is not None
                else "the on-demand price."
            ),
        )
        audit_record(
            action="reclaim.cancelled",
            organization=instance.organization,
            actor_kind="system",
            actor_label="reclaims",
            target=instance,
            detail={
                "order": order_id,
                "max_price_per_hour": str(max_price) if max_price is not None else None,
            },
        )
        order = ReclaimOrder.objects.select_for_update().get(pk=order_id)
        if order.state == OrderState.OPEN and not order.victims.exists():
            order.state = OrderState.NOTHING
            order.summary = (order.summary + " Cancelled: every max price was raised.")[:500]
            order.save(update_fields=["state", "summary"])
        elif order.state == OrderState.OPEN:
            order_check(order_id)
    return True


_ANY_STALE_VICTIM = ReadBuiltOnce(
    lambda: (
        ReclaimVictim.objects.filter(
            ended_at__isnull=True, instance__state__in=sorted(FINAL_STATES)
        )
        .order_by()
        .values_list("pk")[:1]
    )
)


def orders_sweep() -> int:
    """Periodic: settle victims whose instance ended without the portal hearing of it here
    (a missed signal). Returns how many orders it closed."""
    closed = 0
    if not _ANY_STALE_VICTIM.rows():  # almost always: the signals settled every one
        return 0
    stale = ReclaimVictim.objects.filter(
        ended_at__isnull=True, instance__state__in=list(FINAL_STATES)
    ).select_related("instance__organization")
    for victim in stale:
        victim_ended(victim.instance)
        if ReclaimOrder.objects.filter(pk=victim.order_id, state=OrderState.DONE).exists():
            closed += 1
    return closed
