"""Reads of the operator's side: the overview page (capacity sold and free, revenue, queues)."""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import (
    IntegerField,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from portal.billing.models import Invoice
from portal.billing.money import cents
from portal.billing.rating.live import epoch_seconds
from portal.capacity.selectors import Place, fleet
from portal.catalog.models import GpuModel, InstanceType, Region
from portal.instances.models import FINAL_STATES, Instance, State
from portal.operations import revenue
from portal.operations.kept import (
    INSTANCES,
    REQUESTS,
    RESERVATIONS,
    kept,
    kept_key,
    read,
    versions,
)
from portal.orgs.models import Organization, Suspension
from portal.quotas.models import QuotaRequest
from portal.reservations.models import Reservation, ReservationRequest
from portal.web.sql import ReadBuiltOnce

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


@dataclass(frozen=True)
class Named:
    name: str = ""
    code: str = ""


@dataclass(frozen=True)
class FailedInstance:
    """What the overview shows of a failed instance (the names an instance row's relations
    would give)."""

    pk: int
    name: str
    state_reason: str
    state_changed_at: datetime
    organization: Named
    instance_type: Named
    region: Named


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
    failed: list[FailedInstance]
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


@dataclass(frozen=True)
class _Reserved:
    """A reservation in force, with the on-demand GPUs its organization runs in its place."""

    start: datetime
    end: datetime
    gpus: int
    price_per_gpu_hour: Decimal
    place: Place
    in_use: int


def _reservations_ending_after(since: datetime) -> QuerySet[Any, Any]:
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
    return (
        Reservation.objects.in_force()
        .filter(end__gt=since)
        .annotate(in_use=Coalesce(Subquery(in_use, output_field=IntegerField()), 0))
        .values_list(
            "start",
            "end",
            "gpus",
            "price_per_gpu_hour",
            "region__code",
            "gpu_model__code",
            "in_use",
        )
    )


# Read again after each write of an instance (each capacity report, mostly): built once.
_RESERVATIONS_SINCE = ReadBuiltOnce(_reservations_ending_after, since=datetime)


def _reservations_since(since: datetime) -> list[_Reserved]:
    """The reservations in force that end after `since`, each with the live on-demand GPUs of
    its organization in its region and GPU model (1 query)."""
    return [
        _Reserved(
            start=start,
            end=end,
            gpus=gpus,
            price_per_gpu_hour=price,
            place=(region, gpu_model),
            in_use=n,
        )
        for start, end, gpus, price, region, gpu_model, n in _RESERVATIONS_SINCE.rows(since=since)
    ]


def _reservations_key(now: datetime, version: dict[str, str]) -> str:
    since = _month_starts(now)[1]
    return f"reservations:{since:%Y%m}:{version[INSTANCES]}:{version[RESERVATIONS]}"


def _reservations(
    now: datetime, version: dict[str, str], found: dict[str, Any] | None = None
) -> list[_Reserved]:
    """`_reservations_since` the start of `now`'s month, kept until a reservation or an
    instance is written: which of them are in force at `now` is worked out at each view."""
    since = _month_starts(now)[1]
    return kept(_reservations_key(now, version), lambda: _reservations_since(since), found)


def _reservation_amount(
    reserved: list[_Reserved], start: datetime, end: datetime, now: datetime
) -> Decimal:
    """Committed amount of the reservations over [start, min(end, now)), as the database rated
    it: whole seconds (`epoch_seconds`, PostgreSQL's rule) × GPUs × price, summed, then / 3600.
    `reserved` holds every reservation in force that ends after `start`."""
    until = min(end, now)
    if until <= start:
        return Decimal("0.00")
    total = sum(
        (
            epoch_seconds(max(r.start, start), min(r.end, until)) * r.gpus * r.price_per_gpu_hour
            for r in reserved
            if r.start < until and r.end > start
        ),
        Decimal(0),
    )
    return (total / Decimal(3600)).quantize(Decimal("0.01"))


_LIVE = ReadBuiltOnce(
    lambda: (
        Instance.objects.exclude(state__in=FINAL_STATES)
        .values("region_id", "instance_type_id", "preemptible")
        .annotate(gpus=Sum("gpus"))
        .order_by()
        .values_list("region_id", "instance_type_id", "preemptible", "gpus")
    )
)
_REGION_CODES = ReadBuiltOnce(lambda: Region.objects.order_by().values_list("pk", "code"))
_MODEL_CODES = ReadBuiltOnce(
    lambda: InstanceType.objects.order_by().values_list("pk", "gpu_model__code")
)


def _live_by_place() -> dict[Place, tuple[int, int]]:
    """Live instances' GPUs per place: (on-demand, preemptible). Summed from the index
    `instance_live_place` alone (1 query; the codes of the few regions and types then, 2 small
    ones). Read again after each write of an instance: built once."""
    sold: dict[Place, list[int]] = defaultdict(lambda: [0, 0])
    live = _LIVE.rows()
    if live:
        region_code = dict(_REGION_CODES.rows())
        model_code = dict(_MODEL_CODES.rows())
        for region_id, type_id, preemptible, gpus in live:
            place = (region_code[region_id], model_code[type_id])
            sold[place][1 if preemptible else 0] += gpus
    return {place: (v[0], v[1]) for place, v in sold.items()}


def sold_by_place(
    now: datetime,
    *,
    reserved: list[_Reserved] | None = None,
    version: dict[str, str] | None = None,
    found: dict[str, Any] | None = None,
) -> dict[Place, tuple[int, int, int]]:
    """GPUs sold per place now: (on-demand, preemptible, reserved). Live instances' GPUs by
    region, type and kind; reservations in force at `now`, each with the on-demand GPUs its
    organization runs in it, which count once, as reserved. Both kept between views until an
    instance or a reservation is written (`kept.INSTANCES`, `kept.RESERVATIONS`). `version`
    and `found`: the overview's reads of both, done for the whole page."""
    version = version or versions(INSTANCES, RESERVATIONS)
    if reserved is None:
        reserved = _reservations(now, version, found)
    live = kept(f"live:{version[INSTANCES]}", _live_by_place, found)
    sold = {place: [*gpus, 0] for place, gpus in live.items()}
    for r in reserved:
        if r.start <= now < r.end:  # Reservation.objects.active_at(now)
            numbers = sold.setdefault(r.place, [0, 0, 0])
            numbers[2] += r.gpus
            numbers[0] -= min(r.in_use, r.gpus)
    return {place: (v[0], v[1], v[2]) for place, v in sold.items()}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(at: datetime) -> int:
    """Microseconds since the epoch, exactly (the kept rows' times, compared with `now`'s)."""
    return (at - _EPOCH) // timedelta(microseconds=1)


_FAILED_FIELDS = (
    "pk",
    "name",
    "state_reason",
    "state_changed_at",
    "organization__name",
    "instance_type__name",
    "region__code",
)


@dataclass(frozen=True)
class _Failed:
    """The instances failed since `since`: when each failed (microseconds, ascending) and the
    latest few (`_FAILED_FIELDS`, plain values: quicker to read back than model rows)."""

    since: datetime
    times: list[int]
    latest: list[tuple]


def _failed_since(since: datetime, latest: int) -> _Failed:
    failed = Instance.objects.filter(state=State.FAILED, state_changed_at__gte=since)
    times = sorted(_micros(at) for at in failed.values_list("state_changed_at", flat=True))
    rows = list(failed.order_by("-state_changed_at").values_list(*_FAILED_FIELDS)[:latest])
    return _Failed(since=since, times=times, latest=rows)


def _failed(
    since: datetime, latest: int, version: str, read: dict[str, Any] | None = None
) -> tuple[int, list[FailedInstance]]:
    """How many instances failed since `since`, and the latest `latest` of them. Kept until an
    instance is written: as the clock moves on, failures only leave the window, so what was
    kept from an earlier `since` holds every failure since a later one."""
    key = f"failed:{latest}:{version}"
    found = kept(key, lambda: _failed_since(since, latest), read)
    if found.since > since:  # asked about an earlier window than was kept
        found = _failed_since(since, latest)
    cutoff = _micros(since)
    count = len(found.times) - bisect_left(found.times, cutoff)
    return count, [
        FailedInstance(
            pk=pk,
            name=name,
            state_reason=reason,
            state_changed_at=at,
            organization=Named(name=organization),
            instance_type=Named(name=instance_type),
            region=Named(code=region),
        )
        for pk, name, reason, at, organization, instance_type, region in found.latest[:latest]
        if at >= since
    ]


@dataclass(frozen=True)
class _Requests:
    """What the overview shows of requests, suspensions and invoices (`kept.REQUESTS`)."""

    gpu_model_names: dict[str, str]
    open_quota_requests: list[int]  # when each was made (microseconds, ascending)
    oldest_quota_requests: list[QuotaRequest]
    open_reservation_requests: int
    suspended: list[Suspension]
    invoiced: Decimal


def _requests(last_month: datetime) -> _Requests:
    open_requests = QuotaRequest.objects.open()
    invoiced = Invoice.objects.filter(month=last_month.date()).aggregate(total=Sum("total"))
    return _Requests(
        gpu_model_names=dict(GpuModel.objects.values_list("code", "name")),
        open_quota_requests=sorted(
            _micros(at) for at in open_requests.values_list("created_at", flat=True)
        ),
        oldest_quota_requests=list(
            open_requests.select_related("organization", "region", "gpu_model").order_by(
                "created_at"
            )[:10]
        ),
        open_reservation_requests=ReservationRequest.objects.filter(
            state__in=["submitted"]
        ).count(),
        suspended=list(
            Suspension.objects.filter(lifted_at__isnull=True)
            .select_related("organization")
            .order_by("-suspended_at")[:20]
        ),
        invoiced=invoiced["total"] or Decimal("0.00"),
    )


def _by_age(created: list[int], now: datetime) -> list[tuple[str, int]]:
    """The open requests per AGE_BUCKETS at `now`: made at or before `now` - low days, and
    after `now` - high days."""
    counts = []
    for label, low, high in AGE_BUCKETS:
        upto = bisect_right(created, _micros(now - timedelta(days=low)))
        after = 0 if high is None else bisect_right(created, _micros(now - timedelta(days=high)))
        counts.append((label, max(0, upto - after)))
    return counts


def _names(organization_ids: list[int], version: str) -> dict[int, tuple[str, str]]:
    def read() -> dict[int, tuple[str, str]]:
        return {
            pk: (name, slug)
            for pk, name, slug in Organization.objects.filter(pk__in=organization_ids).values_list(
                "pk", "name", "slug"
            )
        }

    if not organization_ids:
        return {}
    return kept(f"names:{','.join(map(str, organization_ids))}:{version}", read)


def operator_overview(
    *,
    now: datetime | None = None,
    top: int = 10,
    failed: int = 50,
    version: dict[str, str] | None = None,
    usage_versions: tuple[str, str] | None = None,
) -> Overview:
    """Everything on the overview page in a fixed number of queries, however many organizations;
    what changes only with writes kept between views (portal.operations.kept). `version` (of
    INSTANCES, REQUESTS and RESERVATIONS) and `usage_versions`: read by the caller with its
    own."""

    now = now or timezone.now()
    last_start, this_start, next_start = _month_starts(now)
    version = version or versions(INSTANCES, REQUESTS, RESERVATIONS)
    usage_versions = usage_versions or revenue.usage_versions()
    # What is kept of the page, read in one round trip.
    requests_key = f"requests:{last_start:%Y%m}:{version[REQUESTS]}"
    found = read(
        [
            *(
                kept_key(key)
                for key in (
                    _reservations_key(now, version),
                    requests_key,
                    f"live:{version[INSTANCES]}",
                    f"failed:{failed}:{version[INSTANCES]}",
                )
            ),
            *revenue.fleet_revenue_keys(now=now, versions=usage_versions),
        ]
    )
    reserved = _reservations(now, version, found)
    requests = kept(requests_key, lambda: _requests(last_start), found)

    # The fleet: the snapshot (no query) and the names of what it mentions.
    fleet_now = fleet()
    places: dict[Place, FleetRow] = {}
    names = requests.gpu_model_names

    def row(place: Place) -> FleetRow:
        if place not in places:
            places[place] = FleetRow(
                region=place[0], gpu_model=place[1], gpu_model_name=names.get(place[1], place[1])
            )
        return places[place]

    for place, total in fleet_now.total.items():
        row(place).total = total
        row(place).free = fleet_now.free.get(place)
    for place, sold in sold_by_place(now, reserved=reserved, version=version, found=found).items():
        r = row(place)
        r.on_demand, r.preemptible, r.reserved = sold

    # Revenue: rated usage of both months (what starts before today kept, today's part rated:
    # 2 queries and their probes), reservations (kept).
    usage = revenue.fleet_revenue(now=now, versions=usage_versions, found=found)

    # Highest spend this month (ties by id), the organizations' names (kept).
    spend = usage.this_month
    highest = heapq.nsmallest(top, spend, key=lambda pk: (-spend[pk], pk))
    named = _names(highest, version[REQUESTS])
    top_spenders = [
        {
            "id": pk,
            "name": named[pk][0],
            "slug": named[pk][1],
            "spend": cents(spend[pk] / Decimal(3600)),
        }
        for pk in highest
        if pk in named
    ]

    # Failed in the last 24 hours: how many and the latest (kept).
    failed_count, failed_list = _failed(
        now - timedelta(hours=24), failed, version[INSTANCES], found
    )

    return Overview(
        now=now,
        fleet_taken_at=fleet_now.taken_at,
        rows=sorted(places.values(), key=lambda r: (r.region, r.gpu_model)),
        revenue_this_month=cents(usage.this_month_total / Decimal(3600)),
        revenue_last_month=cents(usage.last_month / Decimal(3600)),
        reservations_this_month=_reservation_amount(reserved, this_start, next_start, now),
        invoiced_last_month=requests.invoiced,
        quota_requests_by_age=_by_age(requests.open_quota_requests, now),
        oldest_quota_requests=requests.oldest_quota_requests,
        open_reservation_requests=requests.open_reservation_requests,
        top_spenders=top_spenders,
        failed_count=failed_count,
        failed=failed_list,
        suspended=requests.suspended,
    )


def group_rows(rows: list[FleetRow]) -> dict[str, list[FleetRow]]:
    grouped: dict[str, list[FleetRow]] = defaultdict(list)
    for r in rows:
        grouped[r.region].append(r)
    return dict(grouped)
