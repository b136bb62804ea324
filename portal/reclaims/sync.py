"""The backend side of reclaims: the only place this app calls the provisioning backend.
Called from tasks only (never in a web request); each function may run any number of times."""

from __future__ import annotations

import logging
from functools import partial

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.instances import tasks as instance_tasks
from portal.instances.models import Instance
from portal.provisioning import NotFound, get_backend, supports_notice, supports_reclaim
from portal.reclaims import services
from portal.reclaims.models import OrderState, ReclaimVictim, Source

logger = logging.getLogger(__name__)


def order_tell_backend(order_id: int) -> int:
    """Ask the backend to end each victim of the order at its time (idempotent: the backend
    keeps the first time; a told victim is not asked again). Returns how many it told.

    A transient backend error propagates (the task retries); a machine the backend no longer
    has is left to the instance's own sync, which marks it lost.
    """
    backend = get_backend()
    if not supports_reclaim(backend):
        logger.error(
            "reclaim order %s: the provisioning backend cannot end machines at a time "
            "(no ReclaimingBackend); its victims keep running",
            order_id,
        )
        return 0
    told = 0
    # A price reclaim's victims are told only once their notice is over (see
    # services._order): until then the customer may still cancel it.
    victims = (
        ReclaimVictim.objects.filter(order_id=order_id, backend_told_at__isnull=True)
        .filter(~Q(order__source=Source.PRICE) | Q(reclaim_at__lte=timezone.now()))
        .select_related("instance")
    )
    for victim in victims:
        instance = victim.instance
        if instance.is_final:
            continue
        try:
            backend.reclaim(instance.backend_id, victim.reclaim_at)
        except NotFound:
            logger.warning("reclaim: the backend has no machine %s", instance.backend_id)
            instance_tasks.instance_poll.delay(instance.pk)
            continue
        services.victim_backend_told(victim.pk)
        told += 1
        # Look at the instance just after its end, rather than wait for reconciliation.
        countdown = max(0.0, (victim.reclaim_at - timezone.now()).total_seconds()) + 1
        transaction.on_commit(partial(_poll_later, instance.pk, countdown))
    return told


def instance_notice_sync(instance_id: int) -> bool:
    """Put the time of the instance's price reclaim, while its notice runs, where the
    machine's processes look for it (the backend's notice), or take it off when there is none
    any more (the customer raised the max price). The backend ends the machine only when told
    at the end of the notice (`order_tell_backend`).

    It tells the backend the portal's state at the time it runs, so it may run any number of
    times and in any order (a cancel and a new reclaim of the same instance). Returns whether
    the backend was told."""
    backend = get_backend()
    if not supports_notice(backend):
        return False
    instance = Instance.objects.filter(pk=instance_id).first()
    if instance is None or instance.is_final or not instance.backend_id:
        return False
    victim = (
        ReclaimVictim.objects.filter(
            instance_id=instance_id,
            ended_at__isnull=True,
            backend_told_at__isnull=True,
            order__source=Source.PRICE,
        )
        .order_by("reclaim_at")
        .first()
    )
    try:
        backend.notice(instance.backend_id, victim.reclaim_at if victim is not None else None)
    except NotFound:
        logger.warning("reclaim notice: the backend has no machine %s", instance.backend_id)
        return False
    return True


def _poll_later(instance_id: int, countdown: float) -> None:
    instance_tasks.instance_poll.apply_async((instance_id,), countdown=countdown)


def price_victims_due() -> list[int]:
    """Open price orders with a victim whose notice is over and the backend not told (the
    task enqueued for the end of the notice was lost or ran early): their ids."""
    return list(
        ReclaimVictim.objects.filter(
            order__source=Source.PRICE,
            order__state=OrderState.OPEN,
            backend_told_at__isnull=True,
            ended_at__isnull=True,
            reclaim_at__lte=timezone.now(),
        )
        .order_by()  # else DISTINCT would be over the model's ordering's columns too
        .values_list("order_id", flat=True)
        .distinct()
    )
