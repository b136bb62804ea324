from django.http import HttpResponse
from django.shortcuts import render

from portal.catalog import selectors
from portal.catalog.forms import CatalogFilterForm
from portal.catalog.insights import offer_notes
from portal.catalog.models import HOURS_PER_MONTH
from portal.orgs.decorators import OrganizationRequest, organization_view


@organization_view("org.view")
def catalog(request: OrganizationRequest) -> HttpResponse:
    """Everything that can be launched, with prices; htmx swaps only the filters and the table."""
    form = CatalogFilterForm(request.GET or None)
    filters = form.filters()
    offers = selectors.catalog_offers(**filters)
    region = filters["region"]
    notes = offer_notes([o.instance_type.pk for o in offers], region.pk if region else None)
    context = {
        "notes": notes,
        "form": form,
        "offers": offers,
        "region": filters["region"],
        "gpu_model": filters["gpu_model"],
        "filtered": any(filters.values()),
        "hours_per_month": HOURS_PER_MONTH,
        "can_request_quota": request.membership.can("quotas.request"),
    }
    template = "catalog/list.html#table" if request.htmx else "catalog/list.html"
    return render(request, template, context)
