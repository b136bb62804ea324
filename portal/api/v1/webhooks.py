"""Webhook endpoints and their deliveries. Owners and admins, as on the webhooks page.

Rules live in portal.webhooks (which URLs are allowed, the event types, the limit per
organization); a signing secret is in the answer only when it is made (create, roll-secret).
"""

import json

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from portal.api.fields import (
    NoFieldsSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictSerializer,
)
from portal.api.idempotency import PARAMETER as IDEMPOTENCY_PARAMETER
from portal.api.idempotency import idempotent
from portal.api.pagination import PagePagination
from portal.api.v1.base import ApiView
from portal.webhooks import selectors, services
from portal.webhooks.models import TEST_EVENT, URL_MAX_LENGTH, DeliveryState, EventType

TAGS = ["Webhooks"]
DESCRIPTION_MAX_LENGTH = 200


class WebhookEndpointSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    description = serializers.CharField()
    event_types = serializers.ListField(child=serializers.ChoiceField(choices=EventType.choices))
    active = serializers.BooleanField()
    secret_hint = serializers.CharField(help_text="The first characters of the secret.")
    created_by = serializers.EmailField(source="created_by.email", allow_null=True)
    created_at = serializers.DateTimeField()


class WebhookEndpointListSerializer(WebhookEndpointSerializer):
    delivered = serializers.IntegerField(help_text="Deliveries that succeeded.")
    failed = serializers.IntegerField(help_text="Deliveries that gave up.")
    pending = serializers.IntegerField(help_text="Deliveries still being tried.")
    last_delivery_at = serializers.DateTimeField(allow_null=True)


class WebhookEndpointSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        help_text="The signing secret. Shown only in this answer: store it now."
    )


class WebhookEndpointCreateSerializer(StrictSerializer):
    url = StrictCharField(
        max_length=URL_MAX_LENGTH, help_text="An https URL on the public internet."
    )
    event_types = serializers.ListField(
        child=StrictChoiceField(choices=EventType.choices), min_length=1, max_length=20
    )
    description = StrictCharField(
        max_length=DESCRIPTION_MAX_LENGTH, required=False, default="", allow_blank=True
    )


class WebhookEndpointUpdateSerializer(StrictSerializer):
    event_types = serializers.ListField(
        child=StrictChoiceField(choices=EventType.choices),
        min_length=1,
        max_length=20,
        required=False,
    )
    active = StrictBooleanField(required=False, help_text="false pauses deliveries.")
    description = StrictCharField(
        max_length=DESCRIPTION_MAX_LENGTH, required=False, allow_blank=True
    )


class WebhookAttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True, help_text="null if no answer.")
    duration_ms = serializers.IntegerField()
    error = serializers.CharField(help_text="Why it failed; empty for an HTTP answer.")


class WebhookDeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    event_id = serializers.SerializerMethodField(help_text="evt_…, the same for every endpoint.")
    event_type = serializers.ChoiceField(choices=[*EventType.values, TEST_EVENT])
    state = serializers.ChoiceField(choices=DeliveryState.choices)
    attempts = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    payload = serializers.SerializerMethodField(help_text="The JSON body sent.")
    attempt_log = WebhookAttemptSerializer(many=True)

    def get_event_id(self, delivery) -> str:
        return f"evt_{delivery.event_id.hex}"

    def get_payload(self, delivery) -> dict:
        return json.loads(delivery.body)


class WebhookView(ApiView):
    api_area = "webhooks"
    read_permission = "webhooks.manage"
    write_permission = "webhooks.manage"

    def endpoint(self, pk: int):
        return selectors.webhook_endpoint_get_for_member(membership=self.membership, pk=pk)

    def listed(self, pk: int):
        """The endpoint with its delivery counts."""
        endpoint = (
            selectors.webhook_endpoint_list_for_member(membership=self.membership)
            .select_related("created_by")
            .filter(pk=pk)
            .first()
        )
        if endpoint is None:
            self.endpoint(pk)  # the 404
        return endpoint


class WebhookEndpointList(WebhookView):
    extra_error_codes = [409]

    @extend_schema(
        tags=TAGS,
        operation_id="webhooks_list",
        summary="Webhook endpoints, with counts of their deliveries",
        responses={200: WebhookEndpointListSerializer(many=True)},
    )
    def get(self, request):
        endpoints = selectors.webhook_endpoint_list_for_member(
            membership=self.membership
        ).select_related("created_by")
        return Response(WebhookEndpointListSerializer(endpoints, many=True).data)

    @extend_schema(
        tags=TAGS,
        operation_id="webhooks_create",
        summary="Register a webhook endpoint",
        description="The answer has the signing secret, once. Each event is POSTed with the "
        "header Backfill-Signature: t=<unix time>,v1=<HMAC-SHA256(secret, t + '.' + body)>.",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=WebhookEndpointCreateSerializer,
        responses={201: WebhookEndpointSecretSerializer},
    )
    def post(self, request):
        return idempotent(self, request, lambda: self._create(request))

    def _create(self, request) -> Response:
        data = self.validated(WebhookEndpointCreateSerializer)
        endpoint, secret = services.webhook_endpoint_create(
            membership=self.membership,
            url=data["url"],
            event_types=data["event_types"],
            description=data["description"],
        )
        data = {**WebhookEndpointSerializer(endpoint).data, "secret": secret}
        return Response(data, status=status.HTTP_201_CREATED)


class WebhookEndpointDetail(WebhookView):
    @extend_schema(
        tags=TAGS,
        operation_id="webhooks_get",
        summary="One webhook endpoint",
        responses={200: WebhookEndpointListSerializer},
    )
    def get(self, request, pk: int):
        return Response(WebhookEndpointListSerializer(self.listed(pk)).data)

    @extend_schema(
        tags=TAGS,
        operation_id="webhooks_update",
        summary="Change the events, pause or resume, or describe an endpoint",
        description="Only the fields sent change. The URL cannot change: register a new endpoint.",
        request=WebhookEndpointUpdateSerializer,
        responses={200: WebhookEndpointListSerializer},
    )
    def patch(self, request, pk: int):
        endpoint = self.endpoint(pk)
        data = self.validated(WebhookEndpointUpdateSerializer)
        services.webhook_endpoint_update(
            membership=self.membership,
            endpoint=endpoint,
            event_types=data.get("event_types", endpoint.event_types),
            active=data.get("active", endpoint.active),
            description=data.get("description", endpoint.description),
        )
        return Response(WebhookEndpointListSerializer(self.listed(pk)).data)

    @extend_schema(
        tags=TAGS,
        operation_id="webhooks_delete",
        summary="Delete a webhook endpoint and its delivery log",
        responses={204: None},
    )
    def delete(self, request, pk: int):
        services.webhook_endpoint_delete(membership=self.membership, endpoint=self.endpoint(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookEndpointTest(WebhookView):
    @extend_schema(
        tags=TAGS,
        operation_id="webhooks_test",
        summary="Send a test event to the endpoint",
        description="A webhook.test event, whatever the endpoint subscribes to; its attempts "
        "appear in the deliveries.",
        request=None,
        responses={202: WebhookDeliverySerializer},
    )
    def post(self, request, pk: int):
        self.validated(NoFieldsSerializer, data=request.data or {})
        endpoint = self.endpoint(pk)
        delivery = services.webhook_send_test(membership=self.membership, endpoint=endpoint)
        shown = (
            selectors.webhook_delivery_list_for_endpoint(endpoint=delivery.endpoint)
            .filter(pk=delivery.pk)
            .first()
        )
        return Response(WebhookDeliverySerializer(shown).data, status=status.HTTP_202_ACCEPTED)


class WebhookEndpointRollSecret(WebhookView):
    @extend_schema(
        tags=TAGS,
        operation_id="webhooks_roll_secret",
        summary="Replace the signing secret",
        description="The new secret signs from now on; the old one stops at once. The answer "
        "has the new secret, once.",
        request=None,
        responses={200: WebhookEndpointSecretSerializer},
    )
    def post(self, request, pk: int):
        self.validated(NoFieldsSerializer, data=request.data or {})
        endpoint = self.endpoint(pk)
        secret = services.webhook_endpoint_roll_secret(
            membership=self.membership, endpoint=endpoint
        )
        return Response({**WebhookEndpointSerializer(self.listed(pk)).data, "secret": secret})


class WebhookDeliveryFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=DeliveryState.choices, required=False)


class WebhookDeliveryList(WebhookView):
    pagination_class = PagePagination

    @extend_schema(
        tags=TAGS,
        operation_id="webhooks_deliveries",
        summary="The endpoint's deliveries with their attempts, newest first",
        parameters=[WebhookDeliveryFilterSerializer],
        responses={200: WebhookDeliverySerializer(many=True)},
    )
    def get(self, request, pk: int):
        filters = WebhookDeliveryFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        deliveries = selectors.webhook_delivery_list_for_endpoint(endpoint=self.endpoint(pk))
        if "state" in filters.validated_data:
            deliveries = deliveries.filter(state=filters.validated_data["state"])
        return self.paginated(deliveries, WebhookDeliverySerializer)
