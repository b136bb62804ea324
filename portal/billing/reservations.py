"""Reserved capacity on the invoice: `reservation_lines` is added to the usage lines by
`portal.billing.services.invoice_issue`.

Per reservation that overlaps the period:

* one line "reserved capacity": its GPUs × the hours of the reservation inside the period ×
  the committed price per GPU-hour, whether used or not;
* the organization's on-demand usage of that GPU model in that region inside the reservation
  was rated as usual (`rating.lines`) and is taken off again by "covered by reservation" lines
  (one per instance type and unit price), so it is not billed twice. When the instances used
  more GPU-seconds in that window than the reservation holds, only the reservation's share is
  taken off (pro rata); the rest stays billed on demand.

Both are computed by the database, one aggregate query per reservation.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import Sum

from portal.billing.models import UsageInterval, UsageKind
from portal.billing.money import SECONDS_PER_HOUR, cents
from portal.billing.rating import Line, rated
from portal.catalog.models import InstanceType
from portal.reservations.models import Reservation


def _line_type(reservation: Reservation) -> InstanceType | None:
    """The instance type an invoice line names for a reservation: the smallest of its model."""
    return (
        InstanceType.objects.filter(gpu_model_id=reservation.gpu_model_id)
        .order_by("-active", "gpu_count", "pk")
        .first()
    )


def reservation_lines(
    *, organization_id: int, start: datetime, end: datetime, now: datetime
) -> list[Line]:
    lines: list[Line] = []
    reservations = (
        Reservation.objects.overlapping(start, min(end, now))
        .filter(organization_id=organization_id)
        .select_related("region", "gpu_model")
        .order_by("start", "pk")
    )
    for reservation in reservations:
        window_start = max(start, reservation.start)
        window_end = min(end, reservation.end, now)
        seconds = int((window_end - window_start).total_seconds())
        itype = _line_type(reservation)
        if seconds <= 0 or itype is None:
            continue
        hourly = reservation.price_per_gpu_hour * reservation.gpus
        lines.append(
            Line(
                instance_type_id=itype.pk,
                instance_type_name=itype.name,
                instance_type_code=itype.code,
                region_id=reservation.region_id,
                region_code=reservation.region.code,
                kind=UsageKind.RESERVED,
                unit_price=hourly,
                currency=reservation.currency,
                seconds=seconds,
                gpu_seconds=seconds * reservation.gpus,
                amount=cents(hourly * seconds / SECONDS_PER_HOUR),
                first_start=window_start,
            )
        )
        lines += _covered(reservation, window_start, window_end, now, reserved=seconds)
    return lines


def _covered(
    reservation: Reservation, start: datetime, end: datetime, now: datetime, *, reserved: int
) -> list[Line]:
    rows = list(
        rated(
            UsageInterval.objects.filter(
                organization_id=reservation.organization_id,
                region_id=reservation.region_id,
                instance_type__gpu_model_id=reservation.gpu_model_id,
                kind=UsageKind.ON_DEMAND,
            ),
            start=start,
            end=end,
            now=now,
        )
        .values("instance_type_id", "instance_type__name", "instance_type__code", "unit_price")
        .annotate(
            seconds_=Sum("seconds"), gpu_seconds_=Sum("gpu_seconds"), price_=Sum("price_seconds")
        )
        .order_by("instance_type__name", "unit_price")
    )
    used = sum(int(row["gpu_seconds_"]) for row in rows)
    if not used:
        return []
    share = min(Decimal(1), Decimal(reserved * reservation.gpus) / Decimal(used))
    return [
        Line(
            instance_type_id=row["instance_type_id"],
            instance_type_name=row["instance_type__name"],
            instance_type_code=row["instance_type__code"],
            region_id=reservation.region_id,
            region_code=reservation.region.code,
            kind=UsageKind.COVERED,
            unit_price=row["unit_price"],
            currency=reservation.currency,
            seconds=int(int(row["seconds_"]) * share),
            gpu_seconds=int(int(row["gpu_seconds_"]) * share),
            amount=-cents(row["price_"] * share / SECONDS_PER_HOUR),
            first_start=start,
        )
        for row in rows
    ]
