"""Reserved capacity: the organization's reservations, its requests for more, and answers to
the operator's quotes. Rules live in portal.reservations (the same as the reservations page).
"""

from datetime import date

from django.conf import settings
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from portal.api.fields import (
    NoFieldsSerializer,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    UnitPriceField,
)
from portal.api.idempotency import PARAMETER as IDEMPOTENCY_PARAMETER
from portal.api.idempotency import idempotent
from portal.api.pagination import PagePagination
from portal.api.v1.base import ApiView
from portal.reservations import selectors, services
from portal.reservations.models import ReservationRequestState
from portal.reservations.services import MAX_MONTHS

TAGS = ["Reservations"]
NOTE_MAX_LENGTH = 2000
# Far enough for any real request, near enough that the period's end is a real date.
LAST_START_DATE = date(9000, 1, 1)


class ReservationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    region = serializers.CharField(source="region.code")
    gpu_model = serializers.CharField(source="gpu_model.code")
    gpus = serializers.IntegerField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    price_per_gpu_hour = UnitPriceField()
    currency = serializers.CharField()
    status = serializers.SerializerMethodField(
        help_text="upcoming, active, ended or cancelled (now)."
    )
    created_at = serializers.DateTimeField()

    def get_status(self, reservation) -> str:
        return reservation.status(self.context.get("now"))


class ReservationRequestSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    region = serializers.CharField(source="region.code")
    gpu_model = serializers.CharField(source="gpu_model.code")
    gpus = serializers.IntegerField()
    start_date = serializers.DateField()
    months = serializers.IntegerField()
    start = serializers.SerializerMethodField(help_text="Midnight UTC of start_date.")
    end = serializers.SerializerMethodField(help_text="The same day, months later.")
    note = serializers.CharField()
    state = serializers.ChoiceField(choices=ReservationRequestState.choices)
    quote_price = UnitPriceField(allow_null=True, help_text="Per GPU-hour, once quoted.")
    quote_total = serializers.SerializerMethodField(
        help_text="price × GPUs × hours of the period, once quoted (decimal string)."
    )
    currency = serializers.SerializerMethodField()
    quote_note = serializers.CharField(help_text="The operator's note with the quote.")
    quoted_at = serializers.DateTimeField(allow_null=True)
    quote_expires_at = serializers.DateTimeField(
        allow_null=True,
        help_text="The quote can be accepted until then; afterwards the request is expired.",
    )
    answered_at = serializers.DateTimeField(allow_null=True)
    reservation_id = serializers.IntegerField(
        allow_null=True, help_text="The reservation made when the quote was accepted."
    )
    created_by = serializers.EmailField(source="created_by.email", allow_null=True)
    created_at = serializers.DateTimeField()

    def _period(self, item):
        return services.request_period(item.start_date, item.months)

    def get_start(self, item) -> str:
        return serializers.DateTimeField().to_representation(self._period(item)[0])

    def get_end(self, item) -> str:
        return serializers.DateTimeField().to_representation(self._period(item)[1])

    def get_quote_total(self, item) -> str | None:
        if item.quote_price is None:
            return None
        start, end = self._period(item)
        hours = int((end - start).total_seconds()) // 3600
        return str(item.quote_price * item.gpus * hours)

    def get_currency(self, item) -> str:
        return settings.CURRENCY


class ReservationRequestCreateSerializer(StrictSerializer):
    region = StrictCharField(max_length=32, help_text="Region code, e.g. us-east-1.")
    gpu_model = StrictCharField(max_length=32, help_text="GPU model code, e.g. h100.")
    gpus = StrictIntegerField(min_value=1, max_value=100_000)
    start_date = serializers.DateField(
        help_text="Tomorrow or later; the period starts at midnight UTC."
    )
    months = StrictIntegerField(min_value=1, max_value=MAX_MONTHS)
    note = StrictCharField(
        max_length=NOTE_MAX_LENGTH,
        required=False,
        default="",
        allow_blank=True,
        help_text="What it is for.",
    )

    def to_internal_value(self, data):
        if isinstance(data, dict) and not isinstance(data.get("start_date", ""), str):
            raise serializers.ValidationError({"start_date": ["Give a date as YYYY-MM-DD."]})
        return super().to_internal_value(data)

    def validate_start_date(self, value: date) -> date:
        if value > LAST_START_DATE:
            raise serializers.ValidationError(f"Give a date before {LAST_START_DATE}.")
        return value


class ReservationList(ApiView):
    api_area = "reservations"
    read_permission = "quotas.view"
    pagination_class = PagePagination

    @extend_schema(
        tags=TAGS,
        operation_id="reservations_list",
        summary="Reservations, latest start first",
        responses={200: ReservationSerializer(many=True)},
    )
    def get(self, request):
        reservations = selectors.reservation_list_for_organization(organization=self.organization)
        return self.paginated(reservations, ReservationSerializer, now=timezone.now())


class ReservationDetail(ApiView):
    api_area = "reservations"
    read_permission = "quotas.view"

    @extend_schema(
        tags=TAGS,
        operation_id="reservations_get",
        summary="One reservation",
        responses={200: ReservationSerializer},
    )
    def get(self, request, pk: int):
        reservation = (
            selectors.reservation_list_for_organization(organization=self.organization)
            .filter(pk=pk)
            .first()
        )
        if reservation is None:
            raise Http404("No such reservation")
        return Response(ReservationSerializer(reservation, context={"now": timezone.now()}).data)


def _request_for(view: ApiView, pk: int):
    item = (
        selectors.reservation_request_list_for_organization(organization=view.organization)
        .select_related("created_by")
        .filter(pk=pk)
        .first()
    )
    if item is None:
        raise Http404("No such reservation request")
    return item


class ReservationRequestFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=ReservationRequestState.choices, required=False)


class ReservationRequestList(ApiView):
    api_area = "reservations"
    read_permission = "quotas.view"
    write_permission = "quotas.request"
    field_names = {"quote_note": "note"}
    extra_error_codes = [409]
    pagination_class = PagePagination

    @extend_schema(
        tags=TAGS,
        operation_id="reservation_requests_list",
        summary="Requests for reserved capacity, newest first",
        parameters=[ReservationRequestFilterSerializer],
        responses={200: ReservationRequestSerializer(many=True)},
    )
    def get(self, request):
        filters = ReservationRequestFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        items = selectors.reservation_request_list_for_organization(
            organization=self.organization
        ).select_related("created_by")
        if "state" in filters.validated_data:
            items = items.filter(state=filters.validated_data["state"])
        return self.paginated(items, ReservationRequestSerializer)

    @extend_schema(
        tags=TAGS,
        operation_id="reservation_requests_create",
        summary="Ask for reserved capacity",
        description="Owners and admins. The operator answers with a quote (state quoted, "
        "e-mailed to owners and admins), which you accept or decline.",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=ReservationRequestCreateSerializer,
        responses={201: ReservationRequestSerializer},
    )
    def post(self, request):
        return idempotent(self, request, lambda: self._create(request))

    def _create(self, request) -> Response:
        data = self.validated(ReservationRequestCreateSerializer)
        start_date: date = data["start_date"]
        item = services.reservation_request_submit(
            membership=self.membership,
            region=data["region"],
            gpu_model=data["gpu_model"],
            gpus=data["gpus"],
            start_date=start_date,
            months=data["months"],
            note=data["note"],
        )
        return Response(
            ReservationRequestSerializer(_request_for(self, item.pk)).data,
            status=status.HTTP_201_CREATED,
        )


class ReservationRequestDetail(ApiView):
    api_area = "reservations"
    read_permission = "quotas.view"

    @extend_schema(
        tags=TAGS,
        operation_id="reservation_requests_get",
        summary="One request for reserved capacity, with its quote",
        responses={200: ReservationRequestSerializer},
    )
    def get(self, request, pk: int):
        return Response(ReservationRequestSerializer(_request_for(self, pk)).data)


class ReservationRequestAnswer(ApiView):
    api_area = "reservations"
    read_permission = "quotas.view"
    write_permission = "quotas.request"
    extra_error_codes = [409]
    accept = True

    def answer(self, request, pk: int) -> Response:
        self.validated(NoFieldsSerializer, data=request.data or {})
        item = _request_for(self, pk)
        services.reservation_request_answer(
            membership=self.membership, reservation_request=item, accept=self.accept
        )
        return Response(ReservationRequestSerializer(_request_for(self, pk)).data)


class ReservationRequestAccept(ReservationRequestAnswer):
    accept = True

    @extend_schema(
        tags=TAGS,
        operation_id="reservation_requests_accept",
        summary="Accept the quote: the reservation is made",
        description="Only a quoted request whose start date has not passed (409 otherwise). "
        "The answer has the new reservation's id.",
        request=None,
        responses={200: ReservationRequestSerializer},
    )
    def post(self, request, pk: int):
        return self.answer(request, pk)


class ReservationRequestDecline(ReservationRequestAnswer):
    accept = False

    @extend_schema(
        tags=TAGS,
        operation_id="reservation_requests_decline",
        summary="Decline the quote",
        request=None,
        responses={200: ReservationRequestSerializer},
    )
    def post(self, request, pk: int):
        return self.answer(request, pk)
