from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from portal.audit import selectors
from portal.audit.forms import AuditFilterForm
from portal.orgs.decorators import organization_view

PER_PAGE = 50


@organization_view("audit.view")  # tenant and role first: an outsider gets a 404 for any method
@require_GET
def audit_list(request: HttpRequest) -> HttpResponse:
    """The organization's audit log for owners and admins, newest first, filtered by GET."""
    form = AuditFilterForm(request.GET or None)
    filters = form.filters() if form.is_bound else {}
    entries = selectors.audit_entries_for_organization(organization=request.organization, **filters)
    page = Paginator(entries, PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "audit/list.html",
        {
            "form": form,
            "page": page,
            "entries": page.object_list,
            "filtered": any(filters.values()),
        },
    )
