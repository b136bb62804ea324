"""Celery tasks of the operator's side: ids in, one service or backend call, retries."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from portal.catalog.models import InstanceType
from portal.operations.models import Reservation
from portal.provisioning import TransientError, get_backend, supports_reservations

logger = logging.getLogger(__name__)

OPTIONS = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (TransientError,),
    "retry_backoff": True,
    "max_retries": 8,
}


def backend_gpu_model(backend, reservation: Reservation) -> str:
    """The backend's name of the reservation's GPU model (its catalog may spell it otherwise):
    read off `capacity()` through an instance type of that model."""
    codes = set(
        InstanceType.objects.filter(gpu_model_id=reservation.gpu_model_id).values_list(
            "code", flat=True
        )
    )
    for entry in backend.capacity():
        if entry.instance_type in codes and entry.region == reservation.region.code:
            return entry.gpu_model
    return reservation.gpu_model.code


@shared_task(**OPTIONS)
def reservation_hold(reservation_id: int) -> bool:
    """Ask the backend to hold the reserved GPUs (idempotent there on the reservation id)."""
    reservation = (
        Reservation.objects.select_related("organization", "region", "gpu_model")
        .filter(pk=reservation_id, cancelled_at__isnull=True)
        .first()
    )
    if reservation is None:
        return False
    backend = get_backend()
    if not supports_reservations(backend):
        logger.info("backend holds no reservations; R-%s is kept by the portal", reservation_id)
        return False
    backend.reserve(
        reservation_id=reservation.backend_id,
        region=reservation.region.code,
        gpu_model=backend_gpu_model(backend, reservation),
        gpus=reservation.gpus,
        start=reservation.start,
        end=reservation.end,
        account=reservation.organization.slug,
    )
    Reservation.objects.filter(pk=reservation_id, backend_held_at__isnull=True).update(
        backend_held_at=timezone.now()
    )
    return True


@shared_task(**OPTIONS)
def reservation_release(reservation_id: int) -> bool:
    backend = get_backend()
    if not supports_reservations(backend):
        return False
    backend.release(f"reservation-{reservation_id}")
    return True


@shared_task(acks_late=True)
def reservation_reminders() -> int:
    """Daily: "starting in 7 days" and "ending in 7 days", once per reservation."""
    from portal.operations.services import reservation_reminders_send

    return reservation_reminders_send()
