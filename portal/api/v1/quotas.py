"""Quotas (limits and use) and quota requests: list, ask, get, answer, withdraw.

Rules live in portal.quotas: the same selectors and services as the console pages. Staff
decide requests in Django admin; the quota.decided webhook says when.
"""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from portal.api.fields import (
    INT64_MAX,
    NoFieldsSerializer,
    StrictCharField,
    StrictChoiceField,
    StrictIntegerField,
    StrictSerializer,
)
from portal.api.idempotency import PARAMETER as IDEMPOTENCY_PARAMETER
from portal.api.idempotency import idempotent
from portal.api.pagination import PagePagination
from portal.api.v1.base import ApiView
from portal.quotas import selectors, services
from portal.quotas.models import Author, Kind, QuotaRequestState

TAGS = ["Quotas"]


class LimitUseSerializer(serializers.Serializer):
    limit = serializers.IntegerField()
    used = serializers.IntegerField()
    free = serializers.IntegerField()


class QuotaSerializer(serializers.Serializer):
    region = serializers.CharField(source="region.code")
    gpu_model = serializers.CharField(source="gpu_model.code")
    gpu_model_name = serializers.CharField(source="gpu_model.name")
    on_demand = LimitUseSerializer()
    preemptible = LimitUseSerializer()
    offered = serializers.BooleanField(help_text="Whether the GPU model is offered there now.")
    open_requests = serializers.SerializerMethodField(help_text="Ids of open quota requests.")

    def get_open_requests(self, line) -> list[int]:
        return [request.pk for request in line.open_requests]


class StorageQuotaSerializer(serializers.Serializer):
    region = serializers.CharField(source="region.code")
    limit_gb = serializers.IntegerField(source="use.limit")
    used_gb = serializers.IntegerField(source="use.used")
    free_gb = serializers.IntegerField(source="use.free")
    open_request = serializers.IntegerField(
        source="open_request.pk", allow_null=True, help_text="Id of the open request, if any."
    )


class QuotaRequestMessageSerializer(serializers.Serializer):
    author = serializers.ChoiceField(choices=Author.choices)
    author_name = serializers.CharField()
    state = serializers.CharField(help_text="The state the request moved into; empty for a note.")
    body = serializers.CharField()
    created_at = serializers.DateTimeField()


class QuotaRequestSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    region = serializers.CharField(source="region.code")
    gpu_model = serializers.CharField(
        source="gpu_model.code", allow_null=True, help_text="null for a storage request."
    )
    kind = serializers.ChoiceField(choices=Kind.choices)
    limit_at_submission = serializers.IntegerField()
    requested_limit = serializers.IntegerField()
    granted_limit = serializers.IntegerField(allow_null=True)
    justification = serializers.CharField()
    state = serializers.ChoiceField(choices=QuotaRequestState.choices)
    created_by = serializers.EmailField(source="created_by.email", allow_null=True)
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)


class QuotaRequestDetailSerializer(QuotaRequestSerializer):
    messages = QuotaRequestMessageSerializer(many=True, source="conversation")


class QuotaRequestFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=QuotaRequestState.choices, required=False)


class QuotaRequestCreateSerializer(StrictSerializer):
    region = StrictCharField(max_length=32, help_text="Region code, e.g. us-east-1.")
    gpu_model = StrictCharField(
        max_length=32,
        required=False,
        default="",
        allow_blank=True,
        help_text="GPU model code, e.g. h100; leave out for kind storage.",
    )
    kind = StrictChoiceField(choices=Kind.choices)
    requested_limit = StrictIntegerField(
        min_value=0,
        max_value=INT64_MAX,
        help_text="The new limit (not an increment): GPUs, at most "
        f"{settings.QUOTA_MAX_GPUS}; for kind storage, GB of volumes in the region, at most "
        f"{settings.QUOTA_MAX_STORAGE_GB}.",
    )
    justification = StrictCharField(
        max_length=services.JUSTIFICATION_MAX_LENGTH,
        help_text="What will run, for how long, and why it needs this many GPUs.",
    )


class QuotaRequestAnswerSerializer(StrictSerializer):
    message = StrictCharField(max_length=services.MESSAGE_MAX_LENGTH)


class QuotaList(ApiView):
    api_area = "quotas"
    read_permission = "quotas.view"

    @extend_schema(
        tags=TAGS,
        operation_id="quotas_list",
        summary="GPU limits per region and GPU model, with their use",
        responses={200: QuotaSerializer(many=True)},
    )
    def get(self, request):
        lines = selectors.quota_lines(organization=self.organization)
        return Response(QuotaSerializer(lines, many=True).data)


class StorageQuotaList(ApiView):
    api_area = "quotas"
    read_permission = "quotas.view"

    @extend_schema(
        tags=TAGS,
        operation_id="storage_quotas_list",
        summary="Volume storage limits per region (GB), with their use",
        description="Ask for more with a quota request of kind storage.",
        responses={200: StorageQuotaSerializer(many=True)},
    )
    def get(self, request):
        lines = selectors.storage_lines(organization=self.organization)
        return Response(StorageQuotaSerializer(lines, many=True).data)


def _detail(quota_request) -> dict:
    quota_request.conversation = list(
        selectors.quota_request_conversation(quota_request=quota_request)
    )
    return QuotaRequestDetailSerializer(quota_request).data


class QuotaRequestList(ApiView):
    api_area = "quotas"
    read_permission = "quotas.view"
    write_permission = "quotas.request"
    field_names = {"gpu": "gpu_model"}
    extra_error_codes = [409]
    pagination_class = PagePagination

    @extend_schema(
        tags=TAGS,
        operation_id="quota_requests_list",
        summary="Quota requests, newest first",
        parameters=[QuotaRequestFilterSerializer],
        responses={200: QuotaRequestSerializer(many=True)},
    )
    def get(self, request):
        filters = QuotaRequestFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        requests = selectors.quota_request_list_for_organization(organization=self.organization)
        if "state" in filters.validated_data:
            requests = requests.filter(state=filters.validated_data["state"])
        return self.paginated(requests.order_by("-created_at", "-id"), QuotaRequestSerializer)

    @extend_schema(
        tags=TAGS,
        operation_id="quota_requests_create",
        summary="Ask for a new limit",
        description="Owners and admins. Small requests may be approved at once by the "
        "operator's rules (state approved in the answer).",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=QuotaRequestCreateSerializer,
        responses={201: QuotaRequestDetailSerializer},
    )
    def post(self, request):
        return idempotent(self, request, lambda: self._create(request))

    def _create(self, request) -> Response:
        data = self.validated(QuotaRequestCreateSerializer)
        quota_request = services.quota_request_submit(
            membership=self.membership,
            region=data["region"],
            gpu_model=data["gpu_model"],
            kind=data["kind"],
            requested_limit=data["requested_limit"],
            justification=data["justification"],
        )
        return Response(_detail(quota_request), status=status.HTTP_201_CREATED)


class QuotaRequestDetail(ApiView):
    api_area = "quotas"
    read_permission = "quotas.view"

    @extend_schema(
        tags=TAGS,
        operation_id="quota_requests_get",
        summary="One quota request with its conversation",
        responses={200: QuotaRequestDetailSerializer},
    )
    def get(self, request, pk: int):
        quota_request = selectors.quota_request_get_for_organization(
            organization=self.organization, pk=pk
        )
        return Response(_detail(quota_request))


class QuotaRequestWithdraw(ApiView):
    api_area = "quotas"
    read_permission = "quotas.view"
    write_permission = "quotas.request"
    extra_error_codes = [409]

    @extend_schema(
        tags=TAGS,
        operation_id="quota_requests_withdraw",
        summary="Withdraw an open quota request",
        request=None,
        responses={200: QuotaRequestDetailSerializer},
    )
    def post(self, request, pk: int):
        self.validated(NoFieldsSerializer, data=request.data or {})
        quota_request = selectors.quota_request_get_for_organization(
            organization=self.organization, pk=pk
        )
        quota_request = services.quota_request_withdraw(
            membership=self.membership, quota_request=quota_request
        )
        return Response(
            _detail(
                selectors.quota_request_get_for_organization(organization=self.organization, pk=pk)
            )
        )


class QuotaRequestAnswer(ApiView):
    api_area = "quotas"
    read_permission = "quotas.view"
    write_permission = "quotas.request"
    extra_error_codes = [409]

    @extend_schema(
        tags=TAGS,
        operation_id="quota_requests_answer",
        summary="Answer the operator's question on a request",
        description="Only while the request is more_info_needed; it goes back to review.",
        request=QuotaRequestAnswerSerializer,
        responses={200: QuotaRequestDetailSerializer},
    )
    def post(self, request, pk: int):
        quota_request = selectors.quota_request_get_for_organization(
            organization=self.organization, pk=pk
        )
        data = self.validated(QuotaRequestAnswerSerializer)
        services.quota_request_answer(
            membership=self.membership, quota_request=quota_request, message=data["message"]
        )
        return Response(
            _detail(
                selectors.quota_request_get_for_organization(organization=self.organization, pk=pk)
            )
        )
