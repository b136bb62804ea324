"""Usage and invoices, read-only. Money comes from portal.billing's selectors (rating in SQL);
amounts are decimal strings with their currency, never floats."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from portal.api.errors import ApiError
from portal.api.pagination import PagePagination
from portal.api.v1.base import ApiView
from portal.billing import clock, selectors
from portal.billing.models import UsageKind
from portal.billing.periods import Month
from portal.lib.errors import ApplicationError

TAGS = ["Billing"]
MONEY = {"max_digits": 14, "decimal_places": 2}
UNIT_PRICE = {"max_digits": 10, "decimal_places": 4}


class UsageLineSerializer(serializers.Serializer):
    instance_type = serializers.CharField(source="instance_type_code")
    region = serializers.CharField(source="region_code")
    kind = serializers.ChoiceField(choices=UsageKind.choices)
    description = serializers.CharField()
    unit_price = serializers.DecimalField(**UNIT_PRICE, help_text="Per instance-hour.")
    currency = serializers.CharField()
    seconds = serializers.IntegerField()
    gpu_seconds = serializers.IntegerField()
    amount = serializers.DecimalField(**MONEY, help_text="Rounded to cents, half up.")


class InstanceUsageSerializer(serializers.Serializer):
    instance_id = serializers.IntegerField()
    name = serializers.CharField()
    state = serializers.CharField()
    region = serializers.CharField(source="region_code")
    preemptible = serializers.BooleanField()
    running_seconds = serializers.IntegerField()
    stopped_seconds = serializers.IntegerField()
    amount = serializers.DecimalField(**MONEY)


class BudgetRefSerializer(serializers.Serializer):
    amount = serializers.DecimalField(**MONEY)
    currency = serializers.CharField()
    hard_limit = serializers.BooleanField()


class UsageSerializer(serializers.Serializer):
    month = serializers.CharField(help_text="YYYY-MM")
    currency = serializers.CharField()
    spend = serializers.DecimalField(**MONEY, help_text="Before credits and tax.")
    run_rate_hourly = serializers.DecimalField(
        max_digits=14, decimal_places=4, help_text="What runs now costs per hour (this month)."
    )
    forecast = serializers.DecimalField(
        **MONEY, allow_null=True, help_text="Spend at month end if what runs keeps running."
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
    subtotal = serializers.DecimalField(**MONEY)
    credits_applied = serializers.DecimalField(**MONEY)
    tax_rate = serializers.DecimalField(max_digits=6, decimal_places=4)
    tax = serializers.DecimalField(**MONEY)
    total = serializers.DecimalField(**MONEY)
    prepaid_applied = serializers.DecimalField(**MONEY)
    amount_due = serializers.DecimalField(**MONEY)
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
    unit_price = serializers.DecimalField(**UNIT_PRICE)
    amount = serializers.DecimalField(**MONEY)


class InvoiceDetailSerializer(InvoiceSerializer):
    lines = InvoiceLineSerializer(many=True, source="view_lines")


class Usage(ApiView):
    read_permission = "billing.view"

    @extend_schema(
        tags=TAGS,
        operation_id="usage_get",
        summary="Usage and spend of a month, per line and per instance",
        parameters=[UsageQuerySerializer],
        responses={200: UsageSerializer},
    )
    def get(self, request):
        query = UsageQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        this_month = Month.of(clock.now())
        month = this_month
        if "month" in query.validated_data:
            try:
                month = Month.parse(query.validated_data["month"])
            except ApplicationError as error:
                raise ApiError(error.message, details={"month": [error.message]}) from None
            if month.start > this_month.start:
                message = "That month has not begun."
                raise ApiError(message, details={"month": [message]})
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
    read_permission = "billing.view"

    @extend_schema(
        tags=TAGS,
        operation_id="invoices_get",
        summary="One invoice with its lines",
        description=f"The PDF is on the invoice's page in the console ({settings.SITE_NAME}).",
        responses={200: InvoiceDetailSerializer},
    )
    def get(self, request, pk: int):
        invoice = selectors.invoice_get_for_organization(organization=self.organization, pk=pk)
        invoice.view_lines = selectors.invoice_view(invoice=invoice).lines
        return Response(InvoiceDetailSerializer(invoice).data)
