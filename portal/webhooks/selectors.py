"""Reads of webhooks, scoped to the member's organization."""

from django.db.models import Count, Max, Prefetch, Q, QuerySet
from django.http import Http404

from portal.orgs.models import Membership
from portal.webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint


def webhook_endpoint_list_for_member(*, membership: Membership) -> QuerySet[WebhookEndpoint]:
    """The organization's endpoints with counts of their deliveries (one query)."""
    return WebhookEndpoint.objects.filter(organization_id=membership.organization_id).annotate(
        delivered=Count("deliveries", filter=Q(deliveries__state=DeliveryState.SUCCEEDED)),
        failed=Count("deliveries", filter=Q(deliveries__state=DeliveryState.FAILED)),
        pending=Count("deliveries", filter=Q(deliveries__state=DeliveryState.PENDING)),
        last_delivery_at=Max("deliveries__created_at"),
    )


def webhook_endpoint_get_for_member(*, membership: Membership, pk: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(
        organization_id=membership.organization_id, pk=pk
    ).first()
    if endpoint is None:
        raise Http404("No such webhook endpoint")
    return endpoint


def webhook_delivery_list_for_endpoint(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """Newest first, each with its attempts (two queries per page)."""
    return endpoint.deliveries.prefetch_related(
        Prefetch("attempt_log", queryset=WebhookAttempt.objects.order_by("number"))
    ).order_by("-created_at", "-id")
