"""Reads of the spot market: prices in force, their history, the settings, alerts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Max, Min, Q, QuerySet
from django.utils import timezone

from portal.catalog.models import InstanceType, Region
from portal.catalog.selectors import price_in_force
from portal.market.models import CapacityAlert, SpotMarket, SpotPrice
from portal.web.sql import ReadBuiltOnce

Offer = tuple[int, int]  # (region id, instance type id)


# Read at every capacity report, launch and bid check: built once (see ReadBuiltOnce). One
# row is open per offer; ordered by a column of its own, not the model's ordering (which joins
# the type, its GPU model and the region for their names).
_OPEN_PRICE = ReadBuiltOnce(
    lambda region_id, instance_type_id: SpotPrice.objects.filter(
        region_id=region_id, instance_type_id=instance_type_id, valid_until__isnull=True
    ).order_by("-valid_from")[:1],
    region_id=int,
    instance_type_id=int,
)
_OPEN_PRICES = ReadBuiltOnce(lambda: SpotPrice.objects.filter(valid_until__isnull=True).order_by())


def spot_price_current(*, region_id: int, instance_type_id: int) -> SpotPrice | None:
    """The price row in force for the offer now, or None if the market never priced it."""
    rows = _OPEN_PRICE.objects(region_id=region_id, instance_type_id=instance_type_id)
    return rows[0] if rows else None


def spot_prices_current() -> dict[Offer, SpotPrice]:
    """The price rows in force for every offer the market priced. One query."""
    return {(row.region_id, row.instance_type_id): row for row in _OPEN_PRICES.objects()}


def preemptible_price_now(*, region: Region, instance_type: InstanceType) -> Decimal | None:
    """What a preemptible instance of the offer pays per hour now: the spot price, or the
    catalog's preemptible price where the market has not priced the offer (None: no price)."""
    current = spot_price_current(region_id=region.pk, instance_type_id=instance_type.pk)
    if current is not None:
        return current.price
    price = price_in_force(instance_type.pk)
    return price.preemptible_hourly if price is not None else None


def spot_price_history(
    *,
    region_id: int | None = None,
    instance_type_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[SpotPrice]:
    """Price rows in force at some moment of [since, until), oldest first."""
    rows = SpotPrice.objects.select_related("region", "instance_type")
    if region_id is not None:
        rows = rows.filter(region_id=region_id)
    if instance_type_id is not None:
        rows = rows.filter(instance_type_id=instance_type_id)
    if since is not None:
        rows = rows.filter(Q(valid_until__isnull=True) | Q(valid_until__gt=since))
    if until is not None:
        rows = rows.filter(valid_from__lt=until)
    return rows.order_by("valid_from", "id")


@dataclass(frozen=True)
class PriceRange:
    low: Decimal
    high: Decimal


def spot_price_range(
    *, region_id: int, instance_type_id: int, hours: int = 24, now: datetime | None = None
) -> PriceRange | None:
    """The lowest and highest price in force during the last `hours`."""
    now = now or timezone.now()
    found = spot_price_history(
        region_id=region_id,
        instance_type_id=instance_type_id,
        since=now - timedelta(hours=hours),
        until=now,
    ).aggregate(low=Min("price"), high=Max("price"))
    if found["low"] is None:
        return None
    return PriceRange(low=found["low"], high=found["high"])


def spot_market_list() -> QuerySet[SpotMarket]:
    return SpotMarket.objects.select_related("region", "instance_type", "instance_type__gpu_model")


def capacity_alert_list_for_organization(*, organization_id: int) -> QuerySet[CapacityAlert]:
    return CapacityAlert.objects.filter(organization_id=organization_id).select_related(
        "region", "instance_type", "created_by"
    )


def capacity_alert_get_for_organization(*, organization_id: int, pk: int) -> CapacityAlert | None:
    return (
        capacity_alert_list_for_organization(organization_id=organization_id).filter(pk=pk).first()
    )


@dataclass(frozen=True)
class OfferPrices:
    """One offer (instance type in a region) as the pricing page and the API show it."""

    instance_type: InstanceType
    region: Region
    on_demand: Decimal
    spot: Decimal  # the spot price now (the catalog's preemptible price if never priced)
    currency: str
    market_priced: bool  # False: the market has not priced it; `spot` is the catalog's
    history: list[SpotPrice]  # the rows in force during the period asked, oldest first
    since: datetime
    until: datetime

    @property
    def low(self) -> Decimal:
        return min([row.price for row in self.history] or [self.spot])

    @property
    def high(self) -> Decimal:
        return max([row.price for row in self.history] or [self.spot])


def offer_prices_list(
    *,
    days: float = 7,
    region_code: str | None = None,
    instance_type_code: str | None = None,
    now: datetime | None = None,
) -> list[OfferPrices]:
    """Every offer on sale with its on-demand and spot price now and its spot price history
    of the last `days`. Four queries (the catalog's three and one for all the history)."""
    from portal.catalog.selectors import catalog_offers

    now = now or timezone.now()
    since = now - timedelta(days=days)
    history: dict[Offer, list[SpotPrice]] = {}
    for row in SpotPrice.objects.filter(
        Q(valid_until__isnull=True) | Q(valid_until__gt=since), valid_from__lt=now
    ).order_by("valid_from", "id"):
        history.setdefault((row.region_id, row.instance_type_id), []).append(row)
    result = []
    for offer in catalog_offers():
        itype = offer.instance_type
        if instance_type_code and itype.code != instance_type_code:
            continue
        for region in offer.regions:
            if region_code and region.code != region_code:
                continue
            rows = history.get((region.pk, itype.pk), [])
            current = rows[-1] if rows and rows[-1].valid_until is None else None
            result.append(
                OfferPrices(
                    instance_type=itype,
                    region=region,
                    on_demand=offer.price.on_demand_hourly,
                    spot=current.price if current else offer.price.preemptible_hourly,
                    currency=offer.price.currency,
                    market_priced=current is not None,
                    history=rows,
                    since=since,
                    until=now,
                )
            )
    return result
