"""Reads of the operator's side: suspensions, the fleet, reservations, the overview page."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from portal.catalog.models import GpuModel, InstanceType, Region
from portal.instances.capacity import capacity_snapshot
from portal.instances.models import FINAL_STATES, Instance, State
from portal.operations.models import Reservation, ReservationRequest, Suspension
from portal.orgs.models import Organization
from portal.quotas.models import QuotaRequest

# --- Suspensions ------------------------------------------------------------------------------


def organization_suspension(organization: Organization | int) -> Suspension | None:
    org_id = organization if isinstance(organization, int) else organization.pk
    return Suspension.objects.filter(organization_id=org_id, lifted_at__isnull=True).first()


def organization_suspension_reason(organization: Organization | int) -> str | None:
    """Why the organization may not launch or use the API now, for its members; None if it may."""
    suspension = organization_suspension(organization)
    if suspension is None:
        return None
    return f"This organization is suspended by the operator: {suspension.reason}"


# --- The fleet --------------------------------------------------------------------------------

Place = tuple[str, str]  # (region code, GPU model code)


@dataclass(frozen=True)
class Fleet:
    """GPUs per (region, GPU model) from the capacity snapshot; empty without a snapshot."""

    taken_at: datetime | None
    total: dict[Place, int]
    free: dict[Place, int]


def fleet() -> Fleet:
    """The fleet as the backend last reported it. One query (instance types → GPU models)."""
    snapshot = capacity_snapshot()
    if snapshot is None:
        return Fleet(taken_at=None, total={}, free={})
    model_of = dict(InstanceType.objects.values_list("code", "gpu_model__code"))
    total: dict[Place, int] = {}
    free: dict[Place, int] = {}
    for (region, itype), (_instances, free_gpus, total_gpus) in snapshot.entries.items():
        gpu_model = model_of.get(itype)
        if gpu_model is None:
            continue
        place = (region, gpu_model)
        # Every instance type of a model shares the model's nodes: the same numbers.
        total[place] = max(total.get(place, 0), total_gpus)
        free[place] = min(free.get(place, free_gpus), free_gpus)
    return Fleet(taken_at=snapshot.taken_at, total=total, free=free)


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


def active_reservation(
    *, organization: Organization, region: Region, gpu_model: GpuModel, at: datetime | None = None
) -> Reservation | None:
    return (
        Reservation.objects.active_at(at or timezone.now())
        .filter(organization=organization, region=region, gpu_model=gpu_model)
        .order_by("end")
        .first()
    )


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


# --- Customers' pages -------------------------------------------------------------------------


def reservations_for_organization(*, organization: Organization):
    return Reservation.objects.filter(organization=organization).select_related(
        "region", "gpu_model"
    )


def reservation_requests_for_organization(*, organization: Organization):
    return ReservationRequest.objects.filter(organization=organization).select_related(
        "region", "gpu_model", "reservation"
    )


# --- The overview -----------------------------------------------------------------------------


@dataclass
class FleetRow:
    region: str
    gpu_model: str
    gpu_model_name: str
    total: int | None = None
    on_demand: int = 0
    preemptible: int = 0
    reserved: int = 0
    free: int | None = None

    @property
    def sold(self) -> int:
        return self.on_demand + self.preemptible + self.reserved


@dataclass
class Overview:
    now: datetime
    fleet_taken_at: datetime | None
    rows: list[FleetRow]
    revenue_this_month: Decimal
    revenue_last_month: Decimal
    reservations_this_month: Decimal
    invoiced_last_month: Decimal
    quota_requests_by_age: list[tuple[str, int]]
    oldest_quota_requests: list[QuotaRequest]
    open_reservation_requests: int
    top_spenders: list[dict]
    failed_count: int
    failed: list[Instance]
    suspended: list[Suspension] = field(default_factory=list)


AGE_BUCKETS = [
    ("under a day", 0, 1),
    ("1–3 days", 1, 3),
    ("3–7 days", 3, 7),
    ("a week or more", 7, None),
]


def _month_starts(now: datetime) -> tuple[datetime, datetime, datetime]:
    this = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last = (this - timedelta(days=1)).replace(day=1)
    nxt = (this + timedelta(days=32)).replace(day=1)
    return last, this, nxt


def _reservation_amount(start: datetime, end: datetime, now: datetime) -> Decimal:
    """Committed amount of reservations over [start, min(end, now)): one query."""
    from django.db.models import DecimalField, ExpressionWrapper, F, Value
    from django.db.models.functions import Cast, Greatest, Least

    from portal.billing.rating import EXACT, EpochSeconds

    until = min(end, now)
    if until <= start:
        return Decimal("0.00")
    rows = (
        Reservation.objects.overlapping(start, until)
        .annotate(
            seconds=EpochSeconds(Greatest(F("start"), Value(start)), Least(F("end"), Value(until)))
        )
        .annotate(
            amount=ExpressionWrapper(
                Cast(F("seconds"), EXACT) * F("gpus") * F("price_per_gpu_hour"),
                output_field=DecimalField(max_digits=30, decimal_places=6),
            )
        )
        .aggregate(total=Sum("amount"))
    )
    return ((rows["total"] or Decimal(0)) / Decimal(3600)).quantize(Decimal("0.01"))


def _on_demand_in_reservations(now: datetime) -> list[dict]:
    """Per reservation in force: its GPUs and the on-demand GPUs its organization runs there."""
    from django.db.models import IntegerField, OuterRef, Subquery
    from django.db.models.functions import Coalesce

    in_use = (
        Instance.objects.filter(
            organization_id=OuterRef("organization_id"),
            region_id=OuterRef("region_id"),
            instance_type__gpu_model_id=OuterRef("gpu_model_id"),
            preemptible=False,
        )
        .exclude(state__in=FINAL_STATES)
        .order_by()
        .values("organization_id")
        .annotate(n=Sum("gpus"))
        .values("n")
    )
    return list(
        Reservation.objects.active_at(now)
        .annotate(in_use=Coalesce(Subquery(in_use, output_field=IntegerField()), 0))
        .values("in_use", "gpus", "region__code", "gpu_model__code")
    )


def operator_overview(*, now: datetime | None = None, top: int = 10, failed: int = 50) -> Overview:
    """Everything on the overview page in a fixed number of queries, however many organizations."""
    from portal.billing.models import Invoice, UsageInterval
    from portal.billing.money import cents
    from portal.billing.rating import rated

    now = now or timezone.now()
    last_start, this_start, next_start = _month_starts(now)

    # The fleet: the snapshot (1 query) and names of what it mentions (1 query).
    fleet_now = fleet()
    places: dict[Place, FleetRow] = {}
    names = dict(GpuModel.objects.values_list("code", "name"))

    def row(place: Place) -> FleetRow:
        if place not in places:
            places[place] = FleetRow(
                region=place[0], gpu_model=place[1], gpu_model_name=names.get(place[1], place[1])
            )
        return places[place]

    for place, total in fleet_now.total.items():
        row(place).total = total
        row(place).free = fleet_now.free.get(place)
    # Sold: live instances by kind (1 query) and reservations in force now (1 query).
    for item in (
        Instance.objects.exclude(state__in=FINAL_STATES)
        .values("region__code", "instance_type__gpu_model__code", "preemptible")
        .annotate(gpus=Sum("gpus"))
        .order_by()
    ):
        r = row((item["region__code"], item["instance_type__gpu_model__code"]))
        if item["preemptible"]:
            r.preemptible += item["gpus"]
        else:
            r.on_demand += item["gpus"]
    for item in (
        Reservation.objects.active_at(now)
        .values("region__code", "gpu_model__code")
        .annotate(gpus=Sum("gpus"))
        .order_by()
    ):
        row((item["region__code"], item["gpu_model__code"])).reserved += item["gpus"]
    # On-demand GPUs running inside a reservation are sold once, as reserved (1 query).
    for item in _on_demand_in_reservations(now):
        r = row((item["region__code"], item["gpu_model__code"]))
        r.on_demand -= min(item["in_use"], item["gpus"])

    # Revenue: rated usage of both months in one query, reservations (1 query), invoices (1).
    usage = rated(UsageInterval.objects.all(), start=last_start, end=next_start, now=now).aggregate(
        this=Sum("price_seconds", filter=Q(start__gte=this_start)),
        last=Sum("price_seconds", filter=Q(start__lt=this_start)),
    )
    invoiced = Invoice.objects.filter(month=last_start.date()).aggregate(total=Sum("total"))

    # Quota requests by age (1 query) and the oldest few (1 query).
    open_requests = QuotaRequest.objects.open()
    buckets = {}
    for n, (_label, low, high) in enumerate(AGE_BUCKETS):
        condition = Q(created_at__lte=now - timedelta(days=low))
        if high is not None:
            condition &= Q(created_at__gt=now - timedelta(days=high))
        buckets[f"age{n}"] = Count("pk", filter=condition)
    counts = open_requests.aggregate(**buckets)
    oldest = list(
        open_requests.select_related("organization", "region", "gpu_model").order_by("created_at")[
            :10
        ]
    )

    # Highest spend this month (1 query; the organization's name joined).
    spenders = (
        rated(UsageInterval.objects.all(), start=this_start, end=next_start, now=now)
        .values("organization_id", "organization__name", "organization__slug")
        .annotate(spend=Sum("price_seconds"))
        .order_by("-spend")[:top]
    )
    top_spenders = [
        {
            "id": s["organization_id"],
            "name": s["organization__name"],
            "slug": s["organization__slug"],
            "spend": cents(s["spend"] / Decimal(3600)),
        }
        for s in spenders
    ]

    # Failed in the last 24 hours: how many (1 query) and the latest (1 query).
    failed_qs = Instance.objects.filter(
        state=State.FAILED, state_changed_at__gte=now - timedelta(hours=24)
    )
    failed_list = list(
        failed_qs.select_related("organization", "instance_type", "region").order_by(
            "-state_changed_at"
        )[:failed]
    )

    return Overview(
        now=now,
        fleet_taken_at=fleet_now.taken_at,
        rows=sorted(places.values(), key=lambda r: (r.region, r.gpu_model)),
        revenue_this_month=cents((usage["this"] or Decimal(0)) / Decimal(3600)),
        revenue_last_month=cents((usage["last"] or Decimal(0)) / Decimal(3600)),
        reservations_this_month=_reservation_amount(this_start, next_start, now),
        invoiced_last_month=invoiced["total"] or Decimal("0.00"),
        quota_requests_by_age=[
            (label, counts[f"age{n}"]) for n, (label, _l, _h) in enumerate(AGE_BUCKETS)
        ],
        oldest_quota_requests=oldest,
        open_reservation_requests=ReservationRequest.objects.filter(
            state__in=["submitted"]
        ).count(),
        top_spenders=top_spenders,
        failed_count=failed_qs.count(),
        failed=failed_list,
        suspended=list(
            Suspension.objects.filter(lifted_at__isnull=True)
            .select_related("organization")
            .order_by("-suspended_at")[:20]
        ),
    )


def group_rows(rows: list[FleetRow]) -> dict[str, list[FleetRow]]:
    grouped: dict[str, list[FleetRow]] = defaultdict(list)
    for r in rows:
        grouped[r.region].append(r)
    return dict(grouped)


# --- Launches ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchReservation:
    """What a reservation in force means for one launch: GPUs added to the quota, and whether
    the launch fits in what the reservation still has free (then no capacity check)."""

    reservation: Reservation | None = None
    gpus: int = 0
    covers: bool = False


def launch_reservation(
    *, organization: Organization, region: Region, instance_type, preemptible: bool
) -> LaunchReservation:
    """Preemptible launches never draw on a reservation. At most 2 queries."""
    if preemptible:
        return LaunchReservation()
    reservation = active_reservation(
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


# --- Quota approval ---------------------------------------------------------------------------


def fleet_free_gpus(*, region: Region, gpu_model: GpuModel) -> int | None:
    """Free GPUs of the model in the region as the backend last reported (None: unknown or
    stale). Reserved GPUs not in use are not free: the backend holds them."""
    from portal.instances.conf import setting

    current = fleet()
    if current.taken_at is None:
        return None
    if (timezone.now() - current.taken_at).total_seconds() > setting("INSTANCE_CAPACITY_MAX_AGE"):
        return None
    return current.free.get((region.code, gpu_model.code))


def fleet_free_text(*, region: Region, gpu_model: GpuModel) -> str:
    """For staff next to a quota request: free and total GPUs, and how old the report is."""
    current = fleet()
    place = (region.code, gpu_model.code)
    if current.taken_at is None or place not in current.total:
        return "Unknown: the provisioning backend has not reported this capacity yet."
    age = int((timezone.now() - current.taken_at).total_seconds())
    return (
        f"{current.free[place]} of {current.total[place]} {gpu_model.name} GPUs free in "
        f"{region.code} (backend report {age} s ago; reserved GPUs not in use are not free)."
    )
