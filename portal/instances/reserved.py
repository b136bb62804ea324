"""What a reservation in force (portal.reservations) means for a launch: GPUs added to the
quota, and whether the launch fits in what the reservation still has free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from portal.catalog.models import InstanceType, Region
from portal.instances.models import FINAL_STATES, Instance
from portal.orgs.models import Organization
from portal.reservations.models import Reservation
from portal.reservations.selectors import reservation_active_for


@dataclass(frozen=True)
class LaunchReservation:
    """A reservation's GPUs count in the quota, and a launch it covers needs no capacity check."""

    reservation: Reservation | None = None
    gpus: int = 0
    covers: bool = False


def reservation_gpus_in_use(*, reservation: Reservation) -> int:
    """GPUs of the organization's live on-demand instances of the reservation's model there."""
    return (
        Instance.objects.filter(
            organization_id=reservation.organization_id,
            region_id=reservation.region_id,
            instance_type__gpu_model_id=reservation.gpu_model_id,
            preemptible=False,
        )
        .exclude(state__in=FINAL_STATES)
        .aggregate(n=Sum("gpus"))["n"]
        or 0
    )


def reservation_may_apply(
    organization_id: int, *, region: Region, instance_type: InstanceType, preemptible: bool
) -> tuple[str, list[Any]]:
    """Whether `launch_reservation` may find a reservation, as a boolean SQL expression and its
    parameters, for a launch to read with its other reads; when false, the launch has no
    reservation and `LaunchReservation()` is its answer."""
    if preemptible:
        return "FALSE", []
    table = connection.ops.quote_name(Reservation._meta.db_table)
    now = timezone.now()
    return (
        f"EXISTS (SELECT 1 FROM {table} WHERE organization_id = %s AND region_id = %s "  # noqa: S608
        'AND gpu_model_id = %s AND cancelled_at IS NULL AND start <= %s AND "end" > %s)',
        [organization_id, region.pk, instance_type.gpu_model_id, now, now],
    )


def launch_reservation(
    *, organization: Organization, region: Region, instance_type: InstanceType, preemptible: bool
) -> LaunchReservation:
    """Preemptible launches never draw on a reservation. At most 2 queries."""
    if preemptible:
        return LaunchReservation()
    reservation = reservation_active_for(
        organization=organization, region=region, gpu_model=instance_type.gpu_model
    )
    if reservation is None:
        return LaunchReservation()
    in_use = reservation_gpus_in_use(reservation=reservation)
    return LaunchReservation(
        reservation=reservation,
        gpus=reservation.gpus,
        covers=in_use + instance_type.gpu_count <= reservation.gpus,
    )
