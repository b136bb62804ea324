"""Reclaims react to the apps below: a capacity report may hold a shortfall (an order) or a
forecast risk (a warning); an instance that ends may be a victim (its order's progress)."""

from collections.abc import Iterable
from decimal import Decimal

from django.conf import settings
from django.db.models import Q
from django.dispatch import receiver
from django.utils import timezone

from portal.capacity.signals import capacity_snapshot_stored
from portal.catalog.selectors import price_in_force
from portal.instances.models import FINAL_STATES, Instance
from portal.instances.signals import (
    instance_bid_changed,
    instance_state_changed,
    instances_state_changed,
)
from portal.lib.money import format_price
from portal.market.selectors import preemptible_price_now
from portal.market.signals import spot_bids_asked, spot_launches_asked, spot_price_changed
from portal.reclaims import risk, services
from portal.reclaims.models import ReclaimVictim


@receiver(capacity_snapshot_stored, dispatch_uid="reclaims-capacity-reported")
def on_capacity_snapshot_stored(sender, snapshot, **kwargs) -> None:
    services.shortfall_report(snapshot)
    risk.reclaim_risk_check(snapshot)


@receiver(instance_state_changed, dispatch_uid="reclaims-instance-state-changed")
def on_instance_state_changed(sender, instance, from_state: str, **kwargs) -> None:
    if instance.state in FINAL_STATES:
        services.victim_ended(instance)


@receiver(instances_state_changed, dispatch_uid="reclaims-instances-state-changed")
def on_instances_state_changed(sender, changes, **kwargs) -> None:
    ended = {c.instance.pk: c.instance for c in changes if c.instance.state in FINAL_STATES}
    if not ended:
        return
    # One look for the victims among them (most nodes that end were never ordered back).
    for instance_id in ReclaimVictim.objects.filter(
        instance_id__in=list(ended), ended_at__isnull=True
    ).values_list("instance_id", flat=True):
        services.victim_ended(ended[instance_id])


@receiver(spot_price_changed, dispatch_uid="reclaims-spot-price-changed")
def on_spot_price_changed(
    sender, region_id: int, instance_type_id: int, price, at=None, **kwargs
) -> None:
    """A spot price above an instance's bid (max price; none: the on-demand price) reclaims
    it, with the full notice."""
    outbid_q = Q(max_price_per_hour__lt=price)
    on_demand = _on_demand_hourly(instance_type_id)
    if on_demand is not None and on_demand < price:
        outbid_q |= Q(max_price_per_hour__isnull=True)
    outbid = list(
        Instance.objects.filter(
            outbid_q,
            region_id=region_id,
            instance_type_id=instance_type_id,
            preemptible=True,
            reclaim_at__isnull=True,
        ).exclude(state__in=list(FINAL_STATES))
    )
    if not outbid:
        return
    services.reclaim_instances(
        instances=outbid,
        reason="Price above your max price: the spot price rose to "
        f"{format_price(price, settings.CURRENCY)}. "
        "Raise the max price before the end of the notice to keep the instance.",
        at=timezone.now(),  # moved to now + the minimum notice
    )


@receiver(spot_bids_asked, dispatch_uid="reclaims-spot-bids-asked")
def on_spot_bids_asked(
    sender, region_id: int, instance_type_id: int, **kwargs
) -> list[tuple[Decimal, int]]:
    """The bids a rising spot price would pass: (bid, GPUs) of the offer's instances that
    `on_spot_price_changed` would reclaim (no bid: the on-demand price)."""
    rows = (
        Instance.objects.filter(
            region_id=region_id,
            instance_type_id=instance_type_id,
            preemptible=True,
            reclaim_at__isnull=True,
        )
        .exclude(state__in=list(FINAL_STATES))
        .values_list("max_price_per_hour", "gpus")
    )
    return _bids(rows, instance_type_id)


@receiver(spot_launches_asked, dispatch_uid="reclaims-spot-launches-asked")
def on_spot_launches_asked(
    sender, region_id: int, instance_type_id: int, since, **kwargs
) -> list[tuple[Decimal, int]]:
    """(bid, GPUs) of the offer's preemptible instances launched since `since`, running or
    not (no bid: the on-demand price); a launch the backend refused sold nothing."""
    rows = Instance.objects.filter(
        region_id=region_id,
        instance_type_id=instance_type_id,
        preemptible=True,
        created_at__gte=since,
        launched_at__isnull=False,
    ).values_list("max_price_per_hour", "gpus")
    return _bids(rows, instance_type_id)


def _bids(
    rows: Iterable[tuple[Decimal | None, int]], instance_type_id: int
) -> list[tuple[Decimal, int]]:
    """(bid, GPUs) from (max price, GPUs): no max price bids the on-demand price (left out
    without one)."""
    on_demand = _on_demand_hourly(instance_type_id)
    bids = [(bid if bid is not None else on_demand, gpus) for bid, gpus in rows]
    return [(bid, gpus) for bid, gpus in bids if bid is not None]


@receiver(instance_bid_changed, dispatch_uid="reclaims-instance-bid-changed")
def on_instance_bid_changed(sender, instance, previous=None, **kwargs) -> None:
    """A max price raised to the spot price or more during a price reclaim's notice cancels
    the reclaim."""
    spot = preemptible_price_now(region=instance.region, instance_type=instance.instance_type)
    bid = instance.max_price_per_hour
    if bid is None:
        bid = _on_demand_hourly(instance.instance_type_id)
    if spot is not None and bid is not None and bid >= spot:
        services.price_reclaim_cancel(instance=instance, max_price=instance.max_price_per_hour)


def _on_demand_hourly(instance_type_id: int) -> Decimal | None:
    price = price_in_force(instance_type_id)
    return price.on_demand_hourly if price is not None else None
