"""What the organization dashboard shows: a summary in a fixed number of queries."""

from dataclasses import dataclass
from decimal import Decimal

from django.core.cache import cache
from django.db.models import Count, Q, Sum

from portal.instances.models import FINAL_STATES, TRANSITIONAL_STATES, Instance, State
from portal.orgs.models import Membership

DASHBOARD_SPEND_TTL = 60  # seconds


@dataclass(frozen=True)
class FleetSummary:
    running: int
    in_transition: int
    stopped: int
    gpus_running: int
    recent: list[Instance]


def dashboard_fleet(*, membership: Membership, recent: int = 5) -> FleetSummary:
    instances = Instance.objects.filter(organization_id=membership.organization_id)
    counts = instances.exclude(state__in=FINAL_STATES).aggregate(
        running=Count("id", filter=Q(state=State.RUNNING)),
        in_transition=Count("id", filter=Q(state__in=TRANSITIONAL_STATES)),
        stopped=Count("id", filter=Q(state=State.STOPPED)),
        gpus_running=Sum("gpus", filter=Q(state=State.RUNNING)),
    )
    latest = list(
        instances.select_related("instance_type", "region").order_by("-created_at", "-id")[:recent]
    )
    return FleetSummary(
        running=counts["running"],
        in_transition=counts["in_transition"],
        stopped=counts["stopped"],
        gpus_running=counts["gpus_running"] or 0,
        recent=latest,
    )


def dashboard_spend(*, membership: Membership) -> Decimal | None:
    """This month's spend so far, for roles that may see billing; None for the others."""
    if not membership.can("billing.view"):
        return None
    from portal.billing import clock
    from portal.billing.periods import Month
    from portal.billing.selectors import month_spend

    now = clock.now()
    organization = membership.organization
    # Rating the month scans all of its usage; the dashboard shows it to the minute, so one
    # rating per organization a minute is plenty (the billing page itself is always exact).
    return cache.get_or_set(
        f"dashboard-spend:{organization.pk}:{now:%Y-%m}",
        lambda: month_spend(organization=organization, month=Month.of(now), now=now),
        timeout=DASHBOARD_SPEND_TTL,
    )
