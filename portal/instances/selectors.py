"""Reads of instances, scoped to the member's organization. A fixed number of queries each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from portal.catalog.models import Image, InstanceType, Price, Region
from portal.catalog.selectors import Offer, active_regions, catalog_offers
from portal.instances.capacity import FreeCapacity, free_capacity
from portal.instances.models import Instance, InstanceEvent
from portal.orgs.models import Membership
from portal.quotas.models import Kind, Quota
from portal.sshkeys.models import SshKey
from portal.sshkeys.selectors import sshkey_list_for_member

CENT = Decimal("0.01")
SECONDS_PER_HOUR = Decimal(3600)


def instance_list_for_organization(*, membership: Membership) -> QuerySet[Instance]:
    """Every instance of the member's organization, newest first, with what the API and the
    instance page show (type and GPU model, region, image, who launched it). Price a page of
    them with price_rows()."""
    return (
        Instance.objects.filter(organization_id=membership.organization_id)
        .select_related("instance_type__gpu_model", "region", "image", "created_by")
        .order_by("-created_at", "-id")
    )


# What a row of the instance list reads: what it shows, its cost so far and whether to poll.
LIST_ROW_FIELDS = (
    "name",
    "preemptible",
    "state",
    "reclaim_at",
    "ip",
    "created_at",
    "running_since",
    "running_seconds",
    "instance_type__name",
    "region__code",
)


def instance_list_rows(*, membership: Membership) -> QuerySet[Instance]:
    """The list's rows: the organization's instances, newest first, only what a row shows.
    Price the page's rows with price_rows()."""
    return (
        Instance.objects.filter(organization_id=membership.organization_id)
        .select_related("instance_type", "region")
        .only(*LIST_ROW_FIELDS)
        .order_by("-created_at", "-id")
    )


def price_rows(instances: list[Instance], at: datetime | None = None) -> None:
    """Set `hourly_price` on each instance: the running price in force at `at` (default now)
    for its type and kind, None without one. One query for all the instances' types.
    """
    type_ids = {instance.instance_type_id for instance in instances}
    latest: dict[int, Price] = {}
    if type_ids:
        prices = (
            Price.objects.in_force(at or timezone.now())
            .filter(instance_type_id__in=type_ids)
            .order_by("instance_type_id", "-valid_from")
        )
        for price in prices:  # each type's newest start first: keep that one
            latest.setdefault(price.instance_type_id, price)
    for instance in instances:
        price = latest.get(instance.instance_type_id)
        if price is None:
            instance.hourly_price = None
        else:
            instance.hourly_price = (
                price.preemptible_hourly if instance.preemptible else price.on_demand_hourly
            )


def instance_get_for_member(*, membership: Membership, pk: int) -> Instance:
    """The instance with this id in the member's organization, priced; 404 for any other."""
    instance = instance_list_for_organization(membership=membership).filter(pk=pk).first()
    if instance is None:
        raise Http404("No such instance")
    price_rows([instance])
    return instance


def instance_event_list_for_instance(*, instance: Instance) -> QuerySet[InstanceEvent]:
    return instance.events.select_related("actor").order_by("-at", "-id")


def any_in_transition(instances) -> bool:
    """Whether a page showing these instances should keep polling."""
    return any(instance.needs_watching for instance in instances)


def instance_hourly_price(*, instance: Instance) -> Decimal | None:
    """The running price per hour in force now, as price_rows() set it (priced here if not)."""
    if not hasattr(instance, "hourly_price"):
        price_rows([instance])
    return instance.hourly_price


def instance_cost_so_far(*, instance: Instance, at: datetime | None = None) -> Decimal:
    """Running seconds so far times the running price in force, to the cent.

    An estimate for the console. Billing proper (its own issue) rates usage against the price
    history and replaces this one function.
    """
    hourly = instance_hourly_price(instance=instance)
    if not hourly:
        return Decimal("0.00")
    cost = Decimal(instance.billed_seconds(at)) * hourly / SECONDS_PER_HOUR
    return cost.quantize(CENT)


# The launch page


@dataclass(frozen=True)
class RegionChoice:
    region: Region
    free: int | None  # free instances now (snapshot minus launches since); None if unknown
    quota_free: int  # GPUs of this type's model the organization may still launch here
    quota_free_preemptible: int


@dataclass(frozen=True)
class LaunchOffer:
    offer: Offer
    places: list[RegionChoice]
    # One entry per LaunchOptions.regions, None where the type is not offered.
    cells: list[RegionChoice | None]

    @property
    def instance_type(self) -> InstanceType:
        return self.offer.instance_type

    def place(self, region_code: str) -> RegionChoice | None:
        return next((p for p in self.places if p.region.code == region_code), None)


@dataclass(frozen=True)
class LaunchOptions:
    offers: list[LaunchOffer]
    regions: list[Region]
    images: list[Image]
    keys: list[SshKey]
    capacity: FreeCapacity

    def offer(self, code: str) -> LaunchOffer | None:
        return next((o for o in self.offers if o.instance_type.code == code), None)

    @property
    def capacity_taken_at(self) -> datetime | None:
        return self.capacity.snapshot.taken_at if self.capacity.snapshot else None

    @property
    def capacity_is_fresh(self) -> bool:
        return bool(self.capacity.snapshot and self.capacity.snapshot.is_fresh)


def launch_options(*, membership: Membership) -> LaunchOptions:
    """What this member can launch: types with prices, free capacity and quota left per region.

    A fixed number of queries, however many types, regions and keys there are.
    """
    offers = catalog_offers()
    capacity = free_capacity()
    quotas = {
        (q.region_id, q.gpu_model_id): q
        for q in Quota.objects.filter(organization_id=membership.organization_id)
    }

    def quota_free(region: Region, itype: InstanceType, kind: str) -> int:
        quota = quotas.get((region.pk, itype.gpu_model_id))
        return quota.free(kind) if quota else 0

    regions = list(active_regions())
    launch_offers = []
    for offer in offers:
        itype = offer.instance_type
        places = [
            RegionChoice(
                region=region,
                free=capacity.get(region.code, itype.code),
                quota_free=quota_free(region, itype, Kind.ON_DEMAND),
                quota_free_preemptible=quota_free(region, itype, Kind.PREEMPTIBLE),
            )
            for region in offer.regions
        ]
        by_region = {place.region.pk: place for place in places}
        launch_offers.append(
            LaunchOffer(offer=offer, places=places, cells=[by_region.get(r.pk) for r in regions])
        )
    return LaunchOptions(
        offers=launch_offers,
        regions=regions,
        images=list(Image.objects.filter(active=True).order_by("name")),
        keys=list(sshkey_list_for_member(membership=membership)),
        capacity=capacity,
    )
