"""Usage, invoices (with their PDF and CSV) and the monthly budget. Money comes from
portal.billing's selectors (rating in SQL); amounts are decimal strings with their currency,
never floats."""

from typing import TypeVar

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from portal.api.errors import ApiError
from portal.api.fields import MoneyField, StrictBooleanField, StrictSerializer, UnitPriceField
from portal.api.pagination import PagePagination
from portal.api.v1.base import ApiView
from portal.billing import clock, documents, selectors, services
from portal.billing.models import Budget, UsageKind
from portal.billing.periods import Month
from portal.lib.errors import ApplicationError

TAGS = ["Billing"]


class UsageLineSerializer(serializers.Serializer):
    instance_type = serializers.CharField(source="instance_type_code")
    region = serializers.CharField(source="region_code")
    kind = serializers.ChoiceField(choices=UsageKind.choices)
    description = serializers.CharField()
    unit_price = UnitPriceField(help_text="Per instance-hour.")
    currency = serializers.CharField()
    seconds = serializers.IntegerField()
    gpu_seconds = serializers.IntegerField()
    amount = MoneyField(help_text="Rounded to cents, half up.")


class InstanceUsageSerializer(serializers.Serializer):
    instance_id = serializers.IntegerField()
    name = serializers.CharField()
    state = serializers.CharField()
    region = serializers.CharField(source="region_code")
    preemptible = serializers.BooleanField()
    running_seconds = serializers.IntegerField()
    stopped_seconds = serializers.IntegerField()
    amount = MoneyField()


class BudgetRefSerializer(serializers.Serializer):
    amount = MoneyField()
    currency = serializers.CharField()
    hard_limit = serializers.BooleanField()


class UsageSerializer(serializers.Serializer):
    month = serializers.CharField(help_text="YYYY-MM")
    currency = serializers.CharField()
    spend = MoneyField(help_text="Before credits and tax.")
    run_rate_hourly = serializers.DecimalField(
        max_digits=14, decimal_places=4, help_text="What runs now costs per hour (this month)."
    )
    forecast = MoneyField(
        allow_null=True, help_text="Spend at month end if what runs keeps running."
    )
    budget = BudgetRefSerializer(allow_null=True)
    lines = UsageLineSerializer(many=True)
    instances = InstanceUsageSerializer(many=True, source="per_instance")


class UsageQuerySerializer(serializers.Serializer):
    month = serializers.RegexField(
        r"^\d{4}-\d{2}$", required=False, help_text="YYYY-MM; this month if left out."
    )


class InvoiceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.CharField()
    month = serializers.SerializerMethodField(help_text="YYYY-MM")
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    issued_at = serializers.DateTimeField()
    due_at = serializers.DateTimeField()
    currency = serializers.CharField()
    subtotal = MoneyField()
    credits_applied = MoneyField()
    tax_rate = serializers.DecimalField(max_digits=6, decimal_places=4)
    tax = MoneyField()
    total = MoneyField()
    prepaid_applied = MoneyField()
    amount_due = MoneyField()
    balance_due = serializers.SerializerMethodField(help_text="Amount due less credit notes.")
    status = serializers.SerializerMethodField(help_text="Paid, Credited, Overdue or Open.")
    paid_at = serializers.DateTimeField(allow_null=True)

    def get_month(self, invoice) -> str:
        return f"{invoice.month:%Y-%m}"

    def get_balance_due(self, invoice) -> str:
        return str(selectors.invoice_balance_due(invoice))

    def get_status(self, invoice) -> str:
        return selectors.invoice_status(invoice)[0]


class InvoiceLineSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    description = serializers.CharField()
    instance_type = serializers.CharField(source="instance_type.code")
    region = serializers.CharField(source="region.code")
    kind = serializers.ChoiceField(choices=UsageKind.choices)
    seconds = serializers.IntegerField()
    gpu_seconds = serializers.IntegerField()
    unit_price = UnitPriceField()
    amount = MoneyField()


class InvoiceDetailSerializer(InvoiceSerializer):
    lines = InvoiceLineSerializer(many=True)


def _month(request) -> Month:
    """?month=YYYY-MM, this month when left out; a malformed or future month is a 400."""
    query = UsageQuerySerializer(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    this_month = Month.of(clock.now())
    if "month" not in query.validated_data:
        return this_month
    try:
        month = Month.parse(query.validated_data["month"])
    except ApplicationError as error:
        raise ApiError(error.message, details={"month": [error.message]}) from None
    if month.start > this_month.start:
        message = "That month has not begun."
        raise ApiError(message, details={"month": [message]})
    return month


ResponseT = TypeVar("ResponseT", HttpResponse, StreamingHttpResponse)


class FileDownload(ApiView):
    """A view that answers a file (PDF, CSV) when it succeeds, and JSON errors otherwise,
    whatever the client's Accept header says."""

    def perform_content_negotiation(self, request, force=False):
        return JSONRenderer(), JSONRenderer.media_type


def _attachment(response: ResponseT, filename: str) -> ResponseT:
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class Usage(ApiView):
    api_area = "billing"
    read_permission = "billing.view"

    @extend_schema(
        tags=TAGS,
        operation_id="usage_get",
        summary="Usage and spend of a month, per line and per instance",
        parameters=[UsageQuerySerializer],
        responses={200: UsageSerializer},
    )
    def get(self, request):
        month = _month(request)
        overview = selectors.billing_overview(organization=self.organization, month=month)
        budget = overview.budget
        data = {
            "month": month.key,
            "currency": overview.currency,
            "spend": overview.spend,
            "run_rate_hourly": overview.run_rate,
            "forecast": overview.forecast,
            "budget": (
                {
                    "amount": budget.amount,
                    "currency": budget.currency,
                    "hard_limit": budget.hard_limit,
                }
                if budget
                else None
            ),
            "lines": overview.lines,
            "per_instance": overview.month_usage.per_instance()[0],
        }
        return Response(UsageSerializer(data).data)


class InvoiceList(ApiView):
    api_area = "billing"
    read_permission = "billing.view"
    pagination_class = PagePagination

    @extend_schema(
        tags=TAGS,
        operation_id="invoices_list",
        summary="Invoices, newest first",
        responses={200: InvoiceSerializer(many=True)},
    )
    def get(self, request):
        invoices = selectors.invoice_list_for_organization(organization=self.organization).order_by(
            "-month", "-number"
        )
        return self.paginated(invoices, InvoiceSerializer)


class InvoiceDetail(ApiView):
    api_area = "billing"
    read_permission = "billing.view"

    @extend_schema(
        tags=TAGS,
        operation_id="invoices_get",
        summary="One invoice with its lines",
        description="The PDF and the CSV are at /invoices/{id}/pdf/ and /invoices/{id}/csv/.",
        responses={200: InvoiceDetailSerializer},
    )
    def get(self, request, pk: int):
        invoice = selectors.invoice_get_for_organization(
            organization=self.organization, pk=pk, with_lines=True
        )
        return Response(InvoiceDetailSerializer(invoice).data)


class UsageExport(FileDownload):
    api_area = "billing"
    read_permission = "billing.view"

    @extend_schema(
        tags=TAGS,
        operation_id="usage_export",
        summary="The month's usage intervals as CSV",
        description="The same file as the billing page's CSV: one row per usage interval, "
        "clipped to the month.",
        parameters=[UsageQuerySerializer],
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV")},
    )
    def get(self, request):
        month = _month(request)
        rows = documents.usage_csv_rows(
            organization_id=self.organization.pk, month=month, now=clock.now()
        )
        response = StreamingHttpResponse(documents.stream_csv(rows), content_type="text/csv")
        return _attachment(response, f"{self.organization.slug}-usage-{month.key}.csv")


class InvoicePdf(FileDownload):
    api_area = "billing"
    read_permission = "billing.view"

    @extend_schema(
        tags=TAGS,
        operation_id="invoices_pdf",
        summary="The invoice as PDF",
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="PDF")
        },
    )
    def get(self, request, pk: int):
        invoice = selectors.invoice_get_for_organization(organization=self.organization, pk=pk)
        response = HttpResponse(documents.invoice_pdf(invoice), content_type="application/pdf")
        return _attachment(response, documents.invoice_filename(invoice, "pdf"))


class InvoiceCsv(FileDownload):
    api_area = "billing"
    read_permission = "billing.view"

    @extend_schema(
        tags=TAGS,
        operation_id="invoices_csv",
        summary="The invoice's lines as CSV",
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV")},
    )
    def get(self, request, pk: int):
        invoice = selectors.invoice_get_for_organization(organization=self.organization, pk=pk)
        response = HttpResponse(documents.invoice_csv(invoice), content_type="text/csv")
        return _attachment(response, documents.invoice_filename(invoice, "csv"))


class BudgetAlertSerializer(serializers.Serializer):
    month = serializers.SerializerMethodField(help_text="YYYY-MM")
    threshold_percent = serializers.IntegerField(source="threshold")
    spend = MoneyField(help_text="Spend when it was reached.")
    budget = MoneyField(source="budget_amount")
    sent_at = serializers.DateTimeField()

    def get_month(self, alert) -> str:
        return f"{alert.month:%Y-%m}"


class BudgetSerializer(serializers.Serializer):
    amount = MoneyField(allow_null=True, help_text="The monthly budget; null when there is none.")
    currency = serializers.CharField()
    hard_limit = serializers.BooleanField(
        help_text="At 100 % of the budget new launches are refused."
    )
    updated_at = serializers.DateTimeField(allow_null=True)
    month = serializers.CharField(help_text="This month, YYYY-MM.")
    spend = MoneyField(help_text="This month's spend so far.")
    launches_blocked = serializers.CharField(
        allow_null=True,
        help_text="Why launches are refused now (a hard limit reached, an "
        "overdue invoice); null when they are not.",
    )
    alerts = BudgetAlertSerializer(many=True, help_text="Thresholds reached, newest first.")


class BudgetUpdateSerializer(StrictSerializer):
    amount = serializers.RegexField(
        r"^\d{1,12}(\.\d{1,2})?$",
        max_length=15,
        help_text='A positive amount with at most two decimals, as a string: "5000.00".',
    )
    hard_limit = StrictBooleanField(required=False, default=False)

    def to_internal_value(self, data):
        if isinstance(data, dict) and "amount" in data and not isinstance(data["amount"], str):
            raise serializers.ValidationError(
                {"amount": ['Send the amount as a string, e.g. "5000.00".']}
            )
        return super().to_internal_value(data)


class BudgetDetail(ApiView):
    api_area = "billing"
    read_permission = "billing.view"
    write_permission = "billing.manage"

    def _answer(self) -> Response:
        organization = self.organization
        budget = Budget.objects.filter(organization=organization).first()
        month = Month.of(clock.now())
        data = {
            "amount": budget.amount if budget else None,
            "currency": budget.currency if budget else settings.CURRENCY,
            "hard_limit": bool(budget and budget.hard_limit),
            "updated_at": budget.updated_at if budget else None,
            "month": month.key,
            "spend": selectors.month_spend(organization=organization, month=month),
            "launches_blocked": selectors.launch_block_reason(organization=organization),
            "alerts": list(organization.budget_alerts.all()[:12]),
        }
        return Response(BudgetSerializer(data).data)

    @extend_schema(
        tags=TAGS,
        operation_id="budget_get",
        summary="The monthly budget, this month's spend and the alerts sent",
        responses={200: BudgetSerializer},
    )
    def get(self, request):
        return self._answer()

    @extend_schema(
        tags=TAGS,
        operation_id="budget_set",
        summary="Set the monthly budget",
        description="Owners, admins and billing members. E-mails (and budget.threshold "
        "webhooks) go at 50, 80 and 100 %; with hard_limit, launches are refused at 100 %.",
        request=BudgetUpdateSerializer,
        responses={200: BudgetSerializer},
    )
    def put(self, request):
        data = self.validated(BudgetUpdateSerializer)
        services.budget_set(
            organization=self.organization,
            amount=data["amount"],
            hard_limit=data["hard_limit"],
            by=self.membership.user,
        )
        return self._answer()

    @extend_schema(
        tags=TAGS,
        operation_id="budget_delete",
        summary="Remove the monthly budget",
        responses={204: None},
    )
    def delete(self, request):
        services.budget_set(
            organization=self.organization, amount=None, hard_limit=False, by=self.membership.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
