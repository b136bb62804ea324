"""Reserved capacity in the backend: the only place of this app that calls it.

A driver with the `ReservingBackend` capability holds the reserved GPUs (`reserve`, idempotent
on the reservation's id) and lets them go (`release`); without it, the portal keeps
reservations to itself (billing and launch rules, no hold in the backend).
"""

from __future__ import annotations

import logging

from django.utils import timezone

from portal.catalog.models import InstanceType
from portal.provisioning import ProvisioningBackend, get_backend, supports_reservations
from portal.reservations.models import Reservation

logger = logging.getLogger(__name__)


def backend_gpu_model(backend: ProvisioningBackend, reservation: Reservation) -> str:
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


def reservation_release(reservation_id: int) -> bool:
    backend = get_backend()
    if not supports_reservations(backend):
        return False
    backend.release(f"reservation-{reservation_id}")
    return True
