"""Reads of the catalog: what can be launched, where, and at which price now.

Every function here runs a fixed number of queries, however many instance types there are.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Exists, OuterRef, Prefetch, QuerySet, Subquery
from django.utils import timezone

from portal.catalog.models import HOURS_PER_MONTH, GpuModel, InstanceType, Price, Region


@dataclass(frozen=True)
class Offer:
    """An instance type that can be launched now, with the price in force and where."""

    instance_type: InstanceType
    price: Price
    regions: list[Region]

    @property
    def gpu_model(self) -> GpuModel:
        return self.instance_type.gpu_model

    @property
    def on_demand_hourly(self) -> Decimal:
        return self.price.on_demand_hourly

    @property
    def preemptible_hourly(self) -> Decimal:
        return self.price.preemptible_hourly

    @property
    def stopped_hourly(self) -> Decimal:
        """What a stopped instance of the type is billed per hour (its reserved disk)."""
        return self.price.stopped_hourly

    @property
    def on_demand_monthly(self) -> Decimal:
        return monthly(self.price.on_demand_hourly)

    @property
    def preemptible_monthly(self) -> Decimal:
        return monthly(self.price.preemptible_hourly)

    @property
    def preemptible_saving_percent(self) -> int:
        if not self.price.on_demand_hourly:
            return 0
        saving = 1 - self.price.preemptible_hourly / self.price.on_demand_hourly
        return int((saving * 100).to_integral_value())

    @property
    def currency(self) -> str:
        return self.price.currency


def monthly(hourly: Decimal) -> Decimal:
    """A monthly figure for display: the hourly price times 730 hours, to the cent (half up)."""
    return (hourly * HOURS_PER_MONTH).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _in_force(at: datetime) -> QuerySet[Price]:
    """Prices of the outer row's instance type that had started by `at`, newest first."""
    return Price.objects.filter(instance_type=OuterRef("pk"), valid_from__lte=at).order_by(
        "-valid_from"
    )


def price_in_force(instance_type_id: int, at: datetime | None = None) -> Price | None:
    """The price of one instance type in force at `at` (default now): the latest started."""
    # Ordered by its own column: the model's ordering joins the type and its GPU model.
    return (
        Price.objects.in_force(at)
        .filter(instance_type_id=instance_type_id)
        .order_by("-valid_from")
        .first()
    )


def prices_in_force(
    *, instance_types: Iterable[InstanceType | int], at: datetime | None = None
) -> dict[int, Price]:
    """The price in force at `at` (default now) of each instance type, keyed by type id.

    One query: each price row is kept only if its start is the latest start at or before `at`
    for its type (starts are unique per type). Types without such a price are left out.
    """
    at = at or timezone.now()
    ids = [t if isinstance(t, int) else t.pk for t in instance_types]
    if not ids:
        return {}
    latest_start = (
        Price.objects.filter(instance_type=OuterRef("instance_type"), valid_from__lte=at)
        .order_by("-valid_from")
        .values("valid_from")[:1]
    )
    prices = Price.objects.filter(
        instance_type__in=ids, valid_from__lte=at, valid_from=Subquery(latest_start)
    ).order_by()
    return {price.instance_type_id: price for price in prices}


def active_regions() -> QuerySet[Region]:
    return Region.objects.filter(active=True).order_by("code")


def launchable_instance_types(
    *,
    region: Region | None = None,
    gpu_model: GpuModel | None = None,
    at: datetime | None = None,
) -> QuerySet[InstanceType]:
    """Active instance types offered in at least one active region and with a price in force."""
    at = at or timezone.now()
    regions = active_regions()
    if region is not None:
        regions = regions.filter(pk=region.pk)
    offered_in = InstanceType.regions.through.objects.filter(
        instancetype_id=OuterRef("pk"), region__in=regions
    )
    types = (
        InstanceType.objects.filter(active=True)
        .filter(Exists(offered_in), Exists(_in_force(at)))
        .select_related("gpu_model")
    )
    if gpu_model is not None:
        types = types.filter(gpu_model=gpu_model)
    return types.order_by("gpu_model__name", "gpu_count", "code")


def catalog_offers(
    *,
    region: Region | None = None,
    gpu_model: GpuModel | None = None,
    at: datetime | None = None,
) -> list[Offer]:
    """What a customer can launch now, optionally in one region or of one GPU model.

    Three queries: the types, their active regions, and the prices in force.
    """
    at = at or timezone.now()
    types = list(
        launchable_instance_types(region=region, gpu_model=gpu_model, at=at).prefetch_related(
            Prefetch("regions", queryset=active_regions(), to_attr="active_regions")
        )
    )
    prices = prices_in_force(instance_types=types, at=at)
    return [
        Offer(instance_type=t, price=prices[t.pk], regions=t.active_regions)
        for t in types
        if t.pk in prices
    ]


def offered_gpu_models() -> QuerySet[GpuModel]:
    """GPU models of at least one active instance type in an active region."""
    return (
        GpuModel.objects.filter(instance_types__active=True, instance_types__regions__active=True)
        .distinct()
        .order_by("name")
    )


def offered_pairs() -> set[tuple[int, int]]:
    """(region id, GPU model id) of every place where some GPU model can be launched."""
    rows = InstanceType.regions.through.objects.filter(
        region__active=True, instancetype__active=True
    ).values_list("region_id", "instancetype__gpu_model_id")
    return set(rows)
