"""The public pricing page and the capacity alerts of an organization. Thin: selectors read,
services change, templates render."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from portal.catalog.selectors import catalog_offers
from portal.lib.errors import ApplicationError
from portal.market import selectors, services
from portal.market.chart import price_chart
from portal.market.forms import CapacityAlertForm
from portal.market.models import ALERTS_PER_ORGANIZATION
from portal.orgs.decorators import OrganizationRequest, organization_view
from portal.web.forms import form_add_application_error


def pricing(request: HttpRequest) -> HttpResponse:
    """Every offer's on-demand and spot price now, and a 7-day spot chart each. No login."""
    offers = selectors.offer_prices_list(days=7)
    rows = [
        (
            offer,
            price_chart(
                offer.history, since=offer.since, until=offer.until, currency=offer.currency
            ),
        )
        for offer in offers
    ]
    return render(request, "market/pricing.html", {"rows": rows, "now": timezone.now()})


def _safe_next(request: HttpRequest, value: str) -> str | None:
    if value and url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return value
    return None


@organization_view("instances.view")
def alerts(request: OrganizationRequest) -> HttpResponse:
    """The organization's capacity alerts; a member who may launch adds one (also from the
    launch page's "Notify me")."""
    offers = catalog_offers()
    status = 200
    if request.method == "POST":
        form = CapacityAlertForm(request.POST, offers=offers)
        if form.is_valid():
            data = form.cleaned_data
            try:
                if not request.membership.can("instances.manage"):
                    raise ApplicationError(
                        "Your role in this organization cannot set capacity alerts.",
                        code="forbidden",
                    )
                alert = services.capacity_alert_create(
                    membership=request.membership,
                    region=data["region"],
                    instance_type=data["instance_type"],
                    count=data["count"] or 1,
                    max_price=data["max_price"],
                )
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                messages.success(
                    request,
                    f"We will e-mail you when {alert.count} x {alert.instance_type.name} "
                    f"are free in {alert.region.code}.",
                )
                target = _safe_next(request, data.get("next") or "")
                if target:
                    return redirect(target)
                return redirect("market:alerts", org=request.organization.slug)
        status = 400
    else:
        form = CapacityAlertForm(
            initial={
                "region": request.GET.get("region", ""),
                "instance_type": request.GET.get("instance_type", ""),
                "count": request.GET.get("count", "1"),
            },
            offers=offers,
        )
    context = {
        "form": form,
        "alerts": selectors.capacity_alert_list_for_organization(
            organization_id=request.organization.pk
        ).filter(expires_at__gt=timezone.now()),
        "limit": ALERTS_PER_ORGANIZATION,
        "can_manage": request.membership.can("instances.manage"),
    }
    return render(request, "market/alerts.html", context, status=status)


@organization_view("instances.manage")  # tenant and role first: an outsider's GET is a 404
@require_POST
def alert_remove(request: OrganizationRequest, pk: int) -> HttpResponse:
    alert = selectors.capacity_alert_get_for_organization(
        organization_id=request.organization.pk, pk=pk
    )
    if alert is None:
        raise Http404("No such alert.")
    services.capacity_alert_remove(membership=request.membership, alert=alert)
    messages.success(request, "Alert removed.")
    return redirect("market:alerts", org=request.organization.slug)
