"""Reads of reserved capacity: what the fleet can still reserve, and each organization's."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from portal.capacity.selectors import fleet
from portal.catalog.models import GpuModel, Region
from portal.orgs.models import Organization
from portal.reservations.models import Reservation, ReservationRequest


def reserved_peak(
    *, region: Region, gpu_model: GpuModel, start: datetime, end: datetime, exclude_pk=None
) -> int:
    """The most GPUs that reservations in force hold at one moment of [start, end)."""
    rows = list(
        Reservation.objects.overlapping(start, end)
        .filter(region=region, gpu_model=gpu_model)
        .exclude(pk=exclude_pk)
        .values_list("start", "end", "gpus")
    )
    moments = {start, *(s for s, _e, _g in rows if start <= s < end)}
    return max((sum(g for s, e, g in rows if s <= moment < e) for moment in moments), default=0)


def reservable_gpus(
    *, region: Region, gpu_model: GpuModel, start: datetime, end: datetime, exclude_pk=None
) -> int | None:
    """GPUs of the fleet not yet reserved over all of [start, end); None without a snapshot."""
    total = fleet().total.get((region.code, gpu_model.code))
    if total is None:
        return None
    peak = reserved_peak(
        region=region, gpu_model=gpu_model, start=start, end=end, exclude_pk=exclude_pk
    )
    return max(0, total - peak)


def reservation_active_for(
    *, organization: Organization, region: Region, gpu_model: GpuModel, at: datetime | None = None
) -> Reservation | None:
    """The organization's reservation of the model there in force at `at` (now)."""
    return (
        Reservation.objects.active_at(at or timezone.now())
        .filter(organization=organization, region=region, gpu_model=gpu_model)
        .order_by("end")
        .first()
    )


def reservation_list_for_organization(*, organization: Organization) -> QuerySet[Reservation]:
    return Reservation.objects.filter(organization=organization).select_related(
        "region", "gpu_model"
    )


def reservation_request_list_for_organization(
    *, organization: Organization
) -> QuerySet[ReservationRequest]:
    return ReservationRequest.objects.filter(organization=organization).select_related(
        "region", "gpu_model", "reservation"
    )
