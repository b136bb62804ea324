"""Customers' reserved capacity: their reservations, requests for more, quotes to answer."""

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from portal.lib.errors import ApplicationError
from portal.orgs.decorators import organization_view
from portal.orgs.selectors import organization_suspension
from portal.reservations import selectors, services
from portal.reservations.forms import ReservationRequestForm
from portal.reservations.models import ReservationRequest
from portal.web.forms import form_add_application_error


def _page(request: HttpRequest, form=None, status: int = 200) -> HttpResponse:
    organization = request.organization
    can_request = request.membership.can("quotas.request")
    now = timezone.now()
    reservations = list(selectors.reservation_list_for_organization(organization=organization))
    return render(
        request,
        "reservations/list.html",
        {
            "reservations": [(r, r.status(now)) for r in reservations],
            "requests": list(
                selectors.reservation_request_list_for_organization(organization=organization)
            ),
            "can_request": can_request,
            "form": form
            if form is not None
            else (ReservationRequestForm() if can_request else None),
            "suspension": organization_suspension(organization),
        },
        status=status,
    )


@organization_view("quotas.view")
def reservation_list(request: HttpRequest) -> HttpResponse:
    """Reservations in force and to come, requests and quotes, and the form to ask for more."""
    if request.method == "POST":
        if not request.membership.can("quotas.request"):
            return _page(request, status=403)
        form = ReservationRequestForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                item = services.reservation_request_submit(
                    membership=request.membership,
                    region=data["region"],
                    gpu_model=data["gpu_model"],
                    gpus=data["gpus"],
                    start_date=data["start_date"],
                    months=data["months"],
                    note=data["note"],
                )
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                messages.success(
                    request,
                    f"Request #{item.pk} is sent. Owners and admins get an e-mail with the quote.",
                )
                return redirect(
                    "reservations:request_detail", org=request.organization.slug, pk=item.pk
                )
        return _page(request, form=form, status=400)
    return _page(request)


def _request_for(request: HttpRequest, pk: int) -> ReservationRequest:
    item = (
        selectors.reservation_request_list_for_organization(organization=request.organization)
        .filter(pk=pk)
        .first()
    )
    if item is None:
        raise Http404("No such request.")
    return item


@organization_view("quotas.view")
def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    item = _request_for(request, pk)
    start, end = services.request_period(item.start_date, item.months)
    total = None
    if item.quote_price is not None:
        hours = int((end - start).total_seconds()) // 3600
        total = item.quote_price * item.gpus * hours
    return render(
        request,
        "reservations/request_detail.html",
        {
            "r": item,
            "start": start,
            "end": end,
            "total": total,
            "currency": settings.CURRENCY,
            "can_request": request.membership.can("quotas.request"),
        },
    )


@organization_view("quotas.request")
@require_POST
def request_answer(request: HttpRequest, pk: int, answer: str) -> HttpResponse:
    item = _request_for(request, pk)
    if answer not in ("accept", "decline"):
        raise Http404("No such answer.")
    try:
        item = services.reservation_request_answer(
            membership=request.membership, reservation_request=item, accept=answer == "accept"
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        if item.reservation_id:
            messages.success(
                request,
                f"Accepted: reservation R-{item.reservation_id} holds {item.gpus} GPUs for you.",
            )
        else:
            messages.success(request, f"You declined the quote for request #{item.pk}.")
    return redirect("reservations:request_detail", org=request.organization.slug, pk=pk)
