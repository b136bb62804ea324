"""The e-mails of the spot market, one builder per kind (see portal.notifications.registry)."""

from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse

from portal.market.models import CapacityAlert
from portal.notifications.registry import Email, email_kind


@email_kind("capacity_available")
def capacity_available(*, alert_id: int, free_instances: int = 0) -> list[Email]:
    """To the member who asked: the capacity is free now; launch while it lasts."""
    alert = (
        CapacityAlert.objects.select_related(
            "organization", "region", "instance_type", "created_by"
        )
        .filter(pk=alert_id)
        .first()
    )
    if alert is None:  # removed since: nothing to say
        return []
    organization = alert.organization
    query = urlencode({"region": alert.region.code, "instance_type": alert.instance_type.code})
    launch_url = (
        settings.SITE_URL + reverse("instances:launch", args=[organization.slug]) + "?" + query
    )
    return [
        Email(
            template="capacity_available",
            to=[alert.created_by.email],
            context={
                "organization": organization,
                "alert": alert,
                "free_instances": free_instances,
                "currency": settings.CURRENCY,
                "launch_url": launch_url,
                "alerts_url": settings.SITE_URL
                + reverse("market:alerts", args=[organization.slug]),
            },
        )
    ]
