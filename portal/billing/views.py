"""Billing pages for owners, admins and billing members. Thin: selectors read, services write."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from portal.billing import clock, documents, page, selectors, services
from portal.billing.forms import BudgetForm
from portal.billing.models import Budget, UsageKind
from portal.billing.periods import Month
from portal.lib.errors import ApplicationError
from portal.orgs.decorators import OrganizationRequest, organization_view
from portal.web.forms import form_add_application_error


def _month(request: HttpRequest) -> Month:
    """?month=YYYY-MM, this month by default; a malformed or future month is a 404."""
    now_month = Month.of(clock.now())
    text = request.GET.get("month")
    if not text:
        return now_month
    try:
        month = Month.parse(text)
    except ApplicationError:
        raise Http404("No such month") from None
    if month.start > now_month.start:
        raise Http404("That month has not begun")
    return month


@organization_view("billing.view")
def overview(request: OrganizationRequest) -> HttpResponse:
    month = _month(request)
    organization = request.organization
    can_view_instances = request.membership.can("instances.view")

    def rendered() -> tuple[str, str | None]:
        overview = selectors.billing_overview(organization=organization, month=month)
        context = {
            "o": overview,
            "months": selectors.available_months(
                organization=organization, now=overview.now, used=overview.month_usage
            ),
            "kinds": UsageKind,
            "can_view_instances": can_view_instances,
            "storage": selectors.storage_lines_for_month(organization=organization, month=month),
            "current_organization": organization,
            "request": request,  # the tabs' current page: this one, in every view kept
        }
        return render_to_string("billing/_overview.html", context), overview.block_reason

    content, block_reason = page.kept_page(
        organization_id=organization.pk,
        month=month,
        now=clock.now(),
        viewer="instances" if can_view_instances else "billing",
        render=rendered,
    )
    # The layout's banner shows the same reason: read once (overdue invoices and the budget).
    request.launch_hold_reasons = {selectors.BILLING_HOLD: block_reason}
    return render(request, "billing/overview.html", {"content": mark_safe(content)})  # noqa: S308 - our template's output


@organization_view("billing.view")
def usage_csv(request: OrganizationRequest) -> StreamingHttpResponse:
    month = _month(request)
    rows = documents.usage_csv_rows(
        organization_id=request.organization.pk, month=month, now=clock.now()
    )
    response = StreamingHttpResponse(documents.stream_csv(rows), content_type="text/csv")
    filename = f"{request.organization.slug}-usage-{month.key}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@organization_view("billing.view")
def budget(request: OrganizationRequest) -> HttpResponse:
    organization = request.organization
    current = Budget.objects.filter(organization=organization).first()
    can_manage = request.membership.can("billing.manage")
    status = 200
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied("Your role in this organization does not allow this.")
        form = BudgetForm(request.POST)
        if form.is_valid():
            try:
                saved = services.budget_set(
                    organization=organization,
                    amount=form.cleaned_data["amount"],
                    hard_limit=form.cleaned_data["hard_limit"],
                    stop_instances=form.cleaned_data["stop_instances"],
                    by=request.user,
                )
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                if saved is None:
                    messages.success(request, "The monthly budget is removed.")
                else:
                    messages.success(
                        request,
                        f"The monthly budget is now {saved.money}"
                        + (" with a hard limit." if saved.hard_limit else "."),
                    )
                return redirect("billing:budget", org=organization.slug)
        status = 400
    else:
        form = BudgetForm(
            initial={
                "amount": current.amount if current else "",
                "hard_limit": current.hard_limit if current else False,
                "stop_instances": current.stop_instances if current else False,
            }
        )
    month = Month.of(clock.now())
    context = {
        "form": form,
        "budget": current,
        "spend": selectors.month_spend(organization=organization, month=month),
        "month": month,
        "alerts": list(organization.budget_alerts.all()[:12]),
        "can_manage": can_manage,
    }
    # The layout's banner says why launches are refused (after a save, with the new budget).
    request.launch_hold_reasons = {
        selectors.BILLING_HOLD: selectors.launch_block_reason(organization=organization)
    }
    return render(request, "billing/budget.html", context, status=status)


@organization_view("billing.view")
def invoice_list(request: OrganizationRequest) -> HttpResponse:
    return render(
        request,
        "billing/invoices.html",
        {
            "rows": selectors.invoice_row_list_for_organization(organization=request.organization),
            "balances": selectors.credit_balances(organization=request.organization),
        },
    )


@organization_view("billing.view")
def invoice_detail(request: OrganizationRequest, pk: int) -> HttpResponse:
    invoice = selectors.invoice_get_for_organization(organization=request.organization, pk=pk)
    return render(request, "billing/invoice.html", documents.invoice_context(invoice))


@organization_view("billing.view")
def invoice_pdf(request: OrganizationRequest, pk: int) -> HttpResponse:
    invoice = selectors.invoice_get_for_organization(organization=request.organization, pk=pk)
    response = HttpResponse(documents.invoice_pdf(invoice), content_type="application/pdf")
    disposition = "inline" if request.GET.get("inline") else "attachment"
    response["Content-Disposition"] = (
        f'{disposition}; filename="{documents.invoice_filename(invoice, "pdf")}"'
    )
    return response


@organization_view("billing.view")
def invoice_csv(request: OrganizationRequest, pk: int) -> HttpResponse:
    invoice = selectors.invoice_get_for_organization(organization=request.organization, pk=pk)
    response = HttpResponse(documents.invoice_csv(invoice), content_type="text/csv")
    response["Content-Disposition"] = (
        f'attachment; filename="{documents.invoice_filename(invoice, "csv")}"'
    )
    return response
