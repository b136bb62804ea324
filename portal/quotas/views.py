from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from portal.lib.errors import ApplicationError
from portal.orgs.decorators import OrganizationRequest, organization_view
from portal.quotas import selectors, services
from portal.quotas.forms import AnswerForm, QuotaRequestForm
from portal.quotas.models import QuotaRequest, QuotaRequestState
from portal.web.forms import form_add_application_error


@organization_view("quotas.view")
def quotas(request: OrganizationRequest) -> HttpResponse:
    """Each limit with its use and what is free, the open requests, and the history."""
    page = selectors.quotas_page(organization=request.organization)
    return render(
        request,
        "quotas/quotas.html",
        {
            "lines": page.lines,
            "storage_lines": page.storage_lines,
            "open_requests": page.open_requests,
            "past_requests": page.past_requests,
            "changes": page.changes,
            "can_request": request.membership.can("quotas.request"),
        },
    )


@organization_view("quotas.request")
def quota_request_new(request: OrganizationRequest) -> HttpResponse:
    if request.method == "POST":
        form = QuotaRequestForm(request.POST)
    else:
        form = QuotaRequestForm(
            initial={
                "region": request.GET.get("region"),
                "gpu": request.GET.get("gpu"),
                "kind": request.GET.get("kind") or "on_demand",
                "requested_limit": request.GET.get("limit"),
            }
        )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            quota_request = services.quota_request_submit(
                membership=request.membership,
                region=data["region"],
                gpu_model=data["gpu"],
                kind=data["kind"],
                requested_limit=data["requested_limit"],
                justification=data["justification"],
            )
        except ApplicationError as error:
            form_add_application_error(form, error)
        else:
            if quota_request.state == QuotaRequestState.APPROVED:
                messages.success(
                    request,
                    f"Request #{quota_request.pk} was approved automatically: your limit is now "
                    f"{quota_request.granted_limit} {quota_request.unit}.",
                )
            else:
                messages.success(
                    request,
                    f"Request #{quota_request.pk} is sent. Owners and admins get an e-mail "
                    "when it is decided.",
                )
            return redirect(
                "quotas:quota_request_detail", org=request.organization.slug, pk=quota_request.pk
            )
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "quotas/request_new.html",
        {
            "form": form,
            "lines": selectors.quota_lines(organization=request.organization),
            "storage_lines": selectors.storage_lines(organization=request.organization),
        },
        status=status,
    )


def _detail(
    request: OrganizationRequest,
    quota_request: QuotaRequest,
    answer_form: AnswerForm | None = None,
    status: int = 200,
) -> HttpResponse:
    can_request = request.membership.can("quotas.request")
    waiting = quota_request.state == QuotaRequestState.MORE_INFO_NEEDED
    return render(
        request,
        "quotas/request_detail.html",
        {
            "quota_request": quota_request,
            "conversation": selectors.quota_request_conversation(quota_request=quota_request),
            "can_request": can_request,
            "answer_form": answer_form or (AnswerForm() if can_request and waiting else None),
        },
        status=status,
    )


@organization_view("quotas.view")
def quota_request_detail(request: OrganizationRequest, pk: int) -> HttpResponse:
    quota_request = selectors.quota_request_get_for_organization(
        organization=request.organization, pk=pk
    )
    return _detail(request, quota_request)


@organization_view("quotas.request")
@require_POST
def quota_request_answer(request: OrganizationRequest, pk: int) -> HttpResponse:
    quota_request = selectors.quota_request_get_for_organization(
        organization=request.organization, pk=pk
    )
    form = AnswerForm(request.POST)
    if form.is_valid():
        try:
            services.quota_request_answer(
                membership=request.membership,
                quota_request=quota_request,
                message=form.cleaned_data["message"],
            )
        except ApplicationError as error:
            form_add_application_error(form, error)
        else:
            messages.success(request, "Thank you. Your answer is with our operations team.")
            return redirect(
                "quotas:quota_request_detail", org=request.organization.slug, pk=quota_request.pk
            )
    return _detail(request, quota_request, answer_form=form, status=400)


@organization_view("quotas.request")
@require_POST
def quota_request_withdraw(request: OrganizationRequest, pk: int) -> HttpResponse:
    quota_request = selectors.quota_request_get_for_organization(
        organization=request.organization, pk=pk
    )
    try:
        services.quota_request_withdraw(membership=request.membership, quota_request=quota_request)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Request #{quota_request.pk} is withdrawn.")
    return redirect(
        "quotas:quota_request_detail", org=request.organization.slug, pk=quota_request.pk
    )
