"""Operator staff see invoices, issue a month's invoices, mark them paid, issue credit notes and
grant credits. Every write goes through portal.billing.services; issued invoices are read-only.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from portal.accounts.http import AuthenticatedRequest
from portal.billing import services
from portal.billing.documents import invoice_filename, invoice_pdf
from portal.billing.forms import CreditGrantForm, CreditNoteForm, MarkPaidForm, MonthForm
from portal.billing.models import (
    Budget,
    BudgetAlert,
    CreditGrant,
    CreditNote,
    Invoice,
    InvoiceLine,
    Payment,
    UsageInterval,
)
from portal.billing.periods import Month
from portal.billing.selectors import _credited, invoice_balance_due, invoice_status
from portal.lib.errors import ApplicationError
from portal.lib.money import format_amount
from portal.web.forms import form_add_application_error

BADGE = {
    "ok": "#087f56",
    "info": "#2563eb",
    "danger": "#d03b3b",
}


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class InvoiceLineInline(ReadOnlyMixin, admin.TabularInline):
    model = InvoiceLine
    extra = 0
    fields = readonly_fields = (
        "position",
        "description",
        "seconds",
        "gpu_seconds",
        "unit_price",
        "amount",
    )


class CreditNoteInline(ReadOnlyMixin, admin.TabularInline):
    model = CreditNote
    extra = 0
    fields = readonly_fields = ("number", "amount", "reason", "issued_at", "issued_by")


class PaymentInline(ReadOnlyMixin, admin.TabularInline):
    model = Payment
    extra = 0
    fields = readonly_fields = ("amount", "provider", "reference", "received_at", "recorded_by")


class StatusFilter(admin.SimpleListFilter):
    title = "payment"
    parameter_name = "payment"

    def lookups(self, request, model_admin):
        return [("unpaid", "Unpaid"), ("paid", "Paid")]

    def queryset(self, request, queryset):
        if self.value() == "unpaid":
            return queryset.filter(paid_at__isnull=True)
        if self.value() == "paid":
            return queryset.filter(paid_at__isnull=False)
        return queryset


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    change_form_template = "billing/admin/invoice_change_form.html"
    change_list_template = "billing/admin/invoice_change_list.html"
    list_display = [
        "number",
        "organization",
        "month_label",
        "total_display",
        "balance_display",
        "status_badge",
        "issued_at",
        "paid_at",
    ]
    list_filter = [StatusFilter, "month"]
    search_fields = ["number", "organization__name", "organization__slug", "customer_name"]
    list_select_related = ["organization"]
    date_hierarchy = "issued_at"
    inlines = [InvoiceLineInline, CreditNoteInline, PaymentInline]
    readonly_fields = [f.name for f in Invoice._meta.fields]
    actions = ["mark_paid"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(credited=_credited())

    def has_add_permission(self, request) -> bool:
        return False  # issued by the monthly task or the "Issue invoices" page

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # issued invoices are immutable: staff act through the buttons

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_manage_permission(self, request) -> bool:
        return request.user.is_active and request.user.has_perm("billing.change_invoice")

    @admin.display(description="month", ordering="month")
    def month_label(self, obj: Invoice) -> str:
        return Month.of(obj.month).label

    @admin.display(description="total", ordering="total")
    def total_display(self, obj: Invoice) -> str:
        return format_amount(obj.total, obj.currency)

    @admin.display(description="to pay")
    def balance_display(self, obj: Invoice) -> str:
        return format_amount(invoice_balance_due(obj), obj.currency)

    @admin.display(description="status")
    def status_badge(self, obj: Invoice) -> str:
        label, colour = invoice_status(obj)
        return format_html(
            '<strong style="color:{}">{}</strong>', BADGE.get(colour, "#5d6680"), label
        )

    @admin.action(
        description="Mark the selected invoices paid (bank transfer received)",
        permissions=["manage"],
    )
    def mark_paid(self, request, queryset):
        done, refused = 0, []
        for invoice in queryset:
            try:
                services.invoice_mark_paid(
                    invoice=invoice, by=request.user, reference="Marked paid in admin"
                )
                done += 1
            except ApplicationError as error:
                refused.append(error.message)
        if done:
            self.message_user(request, f"{done} invoice(s) marked paid.", messages.SUCCESS)
        for message in refused:
            self.message_user(request, message, messages.WARNING)

    def get_urls(self):
        own = [
            path(
                "issue/",
                self.admin_site.admin_view(self.issue_view),
                name="billing_invoice_issue",
            ),
            path(
                "<int:pk>/mark-paid/",
                self.admin_site.admin_view(self.mark_paid_view),
                name="billing_invoice_mark_paid",
            ),
            path(
                "<int:pk>/credit-note/",
                self.admin_site.admin_view(self.credit_note_view),
                name="billing_invoice_credit_note",
            ),
            path(
                "<int:pk>/pdf/",
                self.admin_site.admin_view(self.pdf_view),
                name="billing_invoice_pdf",
            ),
        ]
        return own + super().get_urls()

    def _form_page(self, request, *, title: str, form, invoice=None, intro: str = ""):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "form": form,
            "invoice": invoice,
            "intro": intro,
        }
        status = 400 if request.method == "POST" else 200
        return TemplateResponse(request, "billing/admin/form.html", context, status=status)

    def _can_manage(self, request) -> None:
        if not self.has_manage_permission(request):
            raise PermissionDenied

    def issue_view(self, request: AuthenticatedRequest):
        self._can_manage(request)
        form = MonthForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                month = Month.parse(form.cleaned_data["month"])
                organization = form.cleaned_data["organization"]
                issued, refused = services.invoices_issue_for_month(
                    month=month,
                    issued_by=request.user,
                    organizations=[organization] if organization else None,
                )
            except ApplicationError as error:
                form.add_error("month" if error.field == "month" else None, error.message)
            else:
                if organization and refused:
                    form.add_error(None, refused[0])
                else:
                    for invoice in issued:
                        self.message_user(
                            request,
                            f"Issued {invoice.number} to {invoice.customer_name}: "
                            f"{format_amount(invoice.total, invoice.currency)}.",
                            messages.SUCCESS,
                        )
                    for message in refused:
                        self.message_user(request, message, messages.WARNING)
                    if not issued and not refused:
                        self.message_user(
                            request, f"Nothing to issue for {month.label}.", messages.INFO
                        )
                    return HttpResponseRedirect(reverse("admin:billing_invoice_changelist"))
        return self._form_page(
            request,
            title="Issue invoices for a month",
            form=form,
            intro="Each organization gets one invoice per calendar month, numbered without gaps. "
            "A month can be invoiced once it has ended; an organization invoiced for it already "
            "is left alone.",
        )

    def pdf_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        invoice = get_object_or_404(self.get_queryset(request), pk=pk)
        response = HttpResponse(invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="{invoice_filename(invoice, "pdf")}"'
        return response

    def mark_paid_view(self, request: AuthenticatedRequest, pk: int):
        self._can_manage(request)
        invoice = get_object_or_404(self.get_queryset(request), pk=pk)
        form = MarkPaidForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                services.invoice_mark_paid(
                    invoice=invoice, by=request.user, reference=form.cleaned_data["reference"]
                )
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(request, f"{invoice.number} is marked paid.", messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:billing_invoice_change", args=[invoice.pk])
                )
        return self._form_page(
            request,
            title=f"Mark {invoice.number} paid",
            form=form,
            invoice=invoice,
            intro=f"Still to pay: {format_amount(invoice_balance_due(invoice), invoice.currency)}.",
        )

    def credit_note_view(self, request: AuthenticatedRequest, pk: int):
        self._can_manage(request)
        invoice = get_object_or_404(self.get_queryset(request), pk=pk)
        form = CreditNoteForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                note = services.credit_note_issue(
                    invoice=invoice,
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    by=request.user,
                )
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                self.message_user(
                    request,
                    f"Credit note {note.number} of "
                    f"{format_amount(note.amount, invoice.currency)} issued on {invoice.number}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:billing_invoice_change", args=[invoice.pk])
                )
        return self._form_page(
            request,
            title=f"Credit note on {invoice.number}",
            form=form,
            invoice=invoice,
            intro="The invoice stays as issued; the credit note takes the amount off what is "
            "due. What was already paid becomes prepaid balance for the next invoices.",
        )


@admin.register(CreditGrant)
class CreditGrantAdmin(admin.ModelAdmin):
    list_display = [
        "organization",
        "kind",
        "amount",
        "currency",
        "reason",
        "granted_by",
        "created_at",
    ]
    list_filter = ["kind"]
    search_fields = ["organization__name", "reason"]
    list_select_related = ["organization", "granted_by"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a ledger: a wrong grant is corrected by another, never edited

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        own = [
            path(
                "grant/",
                self.admin_site.admin_view(self.grant_view),
                name="billing_creditgrant_grant",
            )
        ]
        return own + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:billing_creditgrant_grant"))

    def grant_view(self, request: AuthenticatedRequest):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = CreditGrantForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                grant = services.credit_grant(
                    organization=data["organization"],
                    amount=data["amount"],
                    reason=data["reason"],
                    kind=data["kind"],
                    by=request.user,
                )
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                self.message_user(
                    request,
                    f"{grant.get_kind_display().split(' (')[0]} of "
                    f"{format_amount(grant.amount, grant.currency)} granted to "
                    f"{grant.organization}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:billing_creditgrant_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Grant credit",
            "form": form,
            "intro": "Credit is taken off the next invoices before tax; a prepaid balance pays "
            "their total. The reason is required and shown on the invoice.",
        }
        status = 400 if request.method == "POST" else 200
        return TemplateResponse(request, "billing/admin/form.html", context, status=status)


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["number", "invoice", "amount", "reason", "issued_at", "issued_by"]
    search_fields = ["number", "invoice__number", "reason"]
    list_select_related = ["invoice", "issued_by"]


@admin.register(Budget)
class BudgetAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["organization", "amount", "currency", "hard_limit", "updated_at", "updated_by"]
    list_filter = ["hard_limit"]
    list_select_related = ["organization", "updated_by"]


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["organization", "month", "threshold", "spend", "budget_amount", "sent_at"]
    list_select_related = ["organization"]


@admin.register(UsageInterval)
class UsageIntervalAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["instance", "organization", "kind", "start", "end", "unit_price", "currency"]
    list_filter = ["kind"]
    search_fields = ["instance__name", "organization__name"]
    list_select_related = ["instance", "organization"]
    date_hierarchy = "start"
