"""Webhook pages: the organization's endpoints, one endpoint with its delivery log, actions.

Owners and admins only (a 403 for other members, a 404 for outsiders).
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST

from portal.lib.errors import ApplicationError
from portal.lib.webhook_signature import DEFAULT_TOLERANCE, HEADER
from portal.orgs.decorators import organization_view
from portal.web.forms import form_add_application_error
from portal.webhooks import selectors, services
from portal.webhooks.forms import WebhookEndpointEditForm, WebhookEndpointForm
from portal.webhooks.models import manages_webhooks

DELIVERIES_PER_PAGE = 25


def _check_manager(request: HttpRequest) -> None:
    if not manages_webhooks(request.membership):
        raise PermissionDenied("Only owners and admins manage webhooks.")


@require_http_methods(["GET", "POST"])
@organization_view("org.view")
def endpoint_list(request: HttpRequest) -> HttpResponse:
    _check_manager(request)
    form = WebhookEndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, secret = services.webhook_endpoint_create(
                membership=request.membership,
                url=form.cleaned_data["url"],
                event_types=form.cleaned_data["event_types"],
                description=form.cleaned_data["description"],
            )
        except ApplicationError as error:
            form_add_application_error(form, error)
        else:
            return _detail(request, endpoint, secret=secret, status=201)
    return render(
        request,
        "webhooks/list.html",
        {
            "endpoints": list(
                selectors.webhook_endpoint_list_for_member(membership=request.membership)
            ),
            "form": form,
        },
        status=400 if request.method == "POST" else 200,
    )


@sensitive_variables("secret")
def _detail(request, endpoint, *, secret: str | None = None, edit_form=None, status: int = 200):
    deliveries = Paginator(
        selectors.webhook_delivery_list_for_endpoint(endpoint=endpoint), DELIVERIES_PER_PAGE
    )
    page = deliveries.get_page(request.GET.get("page"))
    deliveries_shown = list(page.object_list)
    response = render(
        request,
        "webhooks/detail.html#deliveries" if request.htmx else "webhooks/detail.html",
        {
            "endpoint": endpoint,
            "secret": secret,
            "page": page,
            "deliveries": deliveries_shown,
            "polling": any(d.state == "pending" for d in deliveries_shown),
            "edit_form": edit_form
            or WebhookEndpointEditForm(
                initial={
                    "description": endpoint.description,
                    "event_types": endpoint.event_types,
                    "active": endpoint.active,
                }
            ),
            "signature_header": HEADER,
            "tolerance": DEFAULT_TOLERANCE,
        },
        status=status,
    )
    if secret:
        response["Cache-Control"] = "no-store"
    return response


@organization_view("org.view")
def endpoint_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The endpoint and its delivery log; htmx polls just the log while something is pending."""
    _check_manager(request)
    endpoint = selectors.webhook_endpoint_get_for_member(membership=request.membership, pk=pk)
    return _detail(request, endpoint)


@organization_view("org.view")
@require_POST
def endpoint_edit(request: HttpRequest, pk: int) -> HttpResponse:
    _check_manager(request)
    endpoint = selectors.webhook_endpoint_get_for_member(membership=request.membership, pk=pk)
    form = WebhookEndpointEditForm(request.POST)
    if form.is_valid():
        try:
            services.webhook_endpoint_update(
                membership=request.membership,
                endpoint=endpoint,
                event_types=form.cleaned_data["event_types"],
                active=form.cleaned_data["active"],
                description=form.cleaned_data["description"],
            )
        except ApplicationError as error:
            form_add_application_error(form, error)
        else:
            messages.success(request, "Saved.")
            return redirect("webhooks:detail", org=request.organization.slug, pk=endpoint.pk)
    return _detail(request, endpoint, edit_form=form, status=400)


@organization_view("org.view")
@require_POST
def endpoint_test(request: HttpRequest, pk: int) -> HttpResponse:
    _check_manager(request)
    endpoint = selectors.webhook_endpoint_get_for_member(membership=request.membership, pk=pk)
    try:
        services.webhook_send_test(membership=request.membership, endpoint=endpoint)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request, "A test event is on its way. Its attempts appear below in a few seconds."
        )
    return redirect("webhooks:detail", org=request.organization.slug, pk=endpoint.pk)


@organization_view("org.view")
@require_POST
def endpoint_roll_secret(request: HttpRequest, pk: int) -> HttpResponse:
    _check_manager(request)
    endpoint = selectors.webhook_endpoint_get_for_member(membership=request.membership, pk=pk)
    secret = services.webhook_endpoint_roll_secret(membership=request.membership, endpoint=endpoint)
    return _detail(request, endpoint, secret=secret)


@require_http_methods(["GET", "POST"])
@organization_view("org.view")
def endpoint_delete(request: HttpRequest, pk: int) -> HttpResponse:
    _check_manager(request)
    endpoint = selectors.webhook_endpoint_get_for_member(membership=request.membership, pk=pk)
    if request.method == "POST":
        services.webhook_endpoint_delete(membership=request.membership, endpoint=endpoint)
        messages.success(request, f"Deleted the endpoint {endpoint.url}.")
        return redirect("webhooks:list", org=request.organization.slug)
    return render(request, "webhooks/delete.html", {"endpoint": endpoint})
