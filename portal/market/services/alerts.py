"""Capacity alerts: "tell me when N of a type are free", fired from the capacity reports."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from portal.audit.services import audit_record
from portal.capacity.snapshot import capacity_snapshot
from portal.catalog.models import InstanceType, Region
from portal.catalog.selectors import price_in_force
from portal.lib.errors import ApplicationError
from portal.market.models import (
    ALERT_TTL_DAYS,
    ALERTS_PER_ORGANIZATION,
    CapacityAlert,
)
from portal.market.selectors import spot_prices_current
from portal.market.services.records import parse_price
from portal.market.signals import capacity_alert_fired
from portal.notifications.services import notify
from portal.web.sql import ReadBuiltOnce


def capacity_alert_create(
    *, membership, region: Any, instance_type: Any, count: Any = 1, max_price: Any = None
) -> CapacityAlert:
    """ "Tell me when `count` × `instance_type` are free in `region`" for the member."""
    organization = membership.organization
    region_code = getattr(region, "code", None) or str(region or "").strip()
    type_code = getattr(instance_type, "code", None) or str(instance_type or "").strip()
    place = Region.objects.filter(code=region_code, active=True).first()
    if place is None:
        raise ApplicationError(
            f"There is no region “{region_code}”.", field="region", code="unknown"
        )
    itype = InstanceType.objects.filter(code=type_code, active=True).first()
    if itype is None:
        raise ApplicationError(
            f"There is no instance type “{type_code}”.", field="instance_type", code="unknown"
        )
    if not itype.regions.filter(pk=place.pk).exists():
        raise ApplicationError(
            f"{itype.name} is not offered in {place.name}.", field="region", code="not_offered"
        )
    try:
        number = int(str(count).strip())
    except (TypeError, ValueError) as exc:
        raise ApplicationError(
            "The number of instances must be a whole number from 1 to 100.", field="count"
        ) from exc
    if not 1 <= number <= 100:
        raise ApplicationError(
            "The number of instances must be a whole number from 1 to 100.", field="count"
        )
    price = None
    if max_price not in (None, ""):
        price = parse_price(max_price, field="max_price", what="The max spot price")
    with transaction.atomic():
        # One organization at a time (its row locked), so two requests cannot pass 20 together.
        type(organization).objects.select_for_update().filter(pk=organization.pk).first()
        live = CapacityAlert.objects.filter(
            organization=organization, expires_at__gt=timezone.now()
        ).count()
        if live >= ALERTS_PER_ORGANIZATION:
            raise ApplicationError(
                f"An organization can have at most {ALERTS_PER_ORGANIZATION} capacity alerts; "
                "remove one first.",
                code="too_many",
            )
        now = timezone.now()
        alert = CapacityAlert.objects.create(
            organization=organization,
            created_by=membership.user,
            region=place,
            instance_type=itype,
            count=number,
            max_price=price,
            created_at=now,
            expires_at=now + timedelta(days=ALERT_TTL_DAYS),
        )
        audit_record(
            action="capacity_alert.created",
            organization=organization,
            actor=membership.user,
            target=alert,
            detail={
                "region": place.code,
                "instance_type": itype.code,
                "count": number,
                "max_price": str(price) if price is not None else None,
            },
        )
    return alert


def capacity_alert_remove(*, membership, alert: CapacityAlert) -> None:
    if alert.organization_id != membership.organization_id:
        raise ApplicationError("There is no such alert.", code="not_found")
    with transaction.atomic():
        audit_record(
            action="capacity_alert.removed",
            organization=membership.organization,
            actor=membership.user,
            target=alert,
            detail={"region": alert.region.code, "instance_type": alert.instance_type.code},
        )
        alert.delete()


_ANY_ALERT = ReadBuiltOnce(lambda: CapacityAlert.objects.order_by().values_list("pk")[:1])


def capacity_alerts_check(*, now: datetime | None = None) -> int:
    """Fire the alerts that came true in the latest capacity snapshot (once each: the
    conditional UPDATE of `fired_at` is the lock), let those that are false again rest no
    more, and remove the expired ones. How many fired."""
    now = now or timezone.now()
    if not _ANY_ALERT.rows():  # after every capacity report; most portals have none set
        return 0
    alerts = list(CapacityAlert.objects.select_related("region", "instance_type", "organization"))
    expired = [alert.pk for alert in alerts if alert.expires_at <= now]
    if expired:
        CapacityAlert.objects.filter(pk__in=expired).delete()
        alerts = [alert for alert in alerts if alert.pk not in expired]
    snapshot = capacity_snapshot()
    if not alerts or snapshot is None or not snapshot.is_fresh:
        return 0
    prices = {offer: row.price for offer, row in spot_prices_current().items()}
    fired = 0
    for alert in alerts:
        entry = snapshot.entries.get((alert.region.code, alert.instance_type.code))
        free = entry[0] if entry is not None else 0
        price = prices.get((alert.region_id, alert.instance_type_id))
        if price is None:
            catalog = price_in_force(alert.instance_type_id)
            price = catalog.preemptible_hourly if catalog is not None else None
        true = free >= alert.count and (
            alert.max_price is None or (price is not None and price <= alert.max_price)
        )
        if not true:
            if alert.fired_at is not None:
                CapacityAlert.objects.filter(pk=alert.pk).update(fired_at=None)
            continue
        if alert.fired_at is not None:
            continue  # resting until false again
        with transaction.atomic():
            claimed = CapacityAlert.objects.filter(pk=alert.pk, fired_at__isnull=True).update(
                fired_at=now, last_fired_at=now
            )
            if claimed != 1:
                continue
            notify("capacity_available", alert_id=alert.pk, free_instances=free)
            capacity_alert_fired.send(
                sender=CapacityAlert, alert=alert, free_instances=free, price=price
            )
        fired += 1
    return fired
