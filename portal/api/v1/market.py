"""The spot market: prices now and their history; capacity alerts.

Rules live in portal.market: the same selectors and services as the pricing page and the
capacity alerts page.
"""

from __future__ import annotations

from datetime import timedelta

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from portal.api.fields import StrictCharField, StrictIntegerField, StrictSerializer, UnitPriceField
from portal.api.idempotency import PARAMETER as IDEMPOTENCY_PARAMETER
from portal.api.idempotency import idempotent
from portal.api.pagination import PagePagination
from portal.api.v1.base import ApiView
from portal.market import selectors, services

TAGS = ["Spot market"]


class OfferPriceSerializer(serializers.Serializer):
    instance_type = serializers.CharField(source="instance_type.code")
    region = serializers.CharField(source="region.code")
    currency = serializers.CharField()
    on_demand_hourly = UnitPriceField(source="on_demand")
    spot_hourly = UnitPriceField(
        source="spot",
        help_text="The preemptible (spot) price per hour now: what a launch's max price "
        "must reach.",
    )
    spot_low_24h = UnitPriceField(source="low", help_text="Lowest spot price, last 24 hours.")
    spot_high_24h = UnitPriceField(source="high", help_text="Highest spot price, last 24 hours.")
    market_priced = serializers.BooleanField(
        help_text="False: the market does not price this offer; the spot price is the "
        "catalog's fixed preemptible price."
    )


class OfferFilterSerializer(serializers.Serializer):
    region = serializers.CharField(max_length=32, required=False, help_text="Region code.")
    instance_type = serializers.CharField(
        max_length=64, required=False, help_text="Instance type code."
    )


class Prices(ApiView):
    api_area = "catalog"

    @extend_schema(
        tags=TAGS,
        operation_id="prices_list",
        summary="On-demand and spot price now of every offer (instance type in a region)",
        parameters=[OfferFilterSerializer],
        responses={200: OfferPriceSerializer(many=True)},
    )
    def get(self, request):
        filters = OfferFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        offers = selectors.offer_prices_list(
            days=1, region_code=wanted.get("region"), instance_type_code=wanted.get("instance_type")
        )
        return Response(OfferPriceSerializer(offers, many=True).data)


class SpotPriceSerializer(serializers.Serializer):
    instance_type = serializers.CharField(source="instance_type.code")
    region = serializers.CharField(source="region.code")
    price = UnitPriceField(help_text="Per instance-hour.")
    currency = serializers.CharField()
    valid_from = serializers.DateTimeField()
    valid_until = serializers.DateTimeField(allow_null=True, help_text="null: in force now.")
    reason = serializers.ChoiceField(
        choices=["initial", "market", "manual"],
        help_text="initial: first price; market: moved with spare capacity; manual: set by staff.",
    )
    free_gpus = serializers.IntegerField(allow_null=True)
    total_gpus = serializers.IntegerField(allow_null=True)
    sold_share = serializers.DecimalField(
        max_digits=5, decimal_places=2, allow_null=True, help_text="% of the GPUs in use."
    )


class HistoryFilterSerializer(OfferFilterSerializer):
    since = serializers.DateTimeField(
        required=False, help_text="Prices in force after this moment (default: 7 days ago)."
    )
    until = serializers.DateTimeField(
        required=False, help_text="Prices in force before this moment (default: now)."
    )

    def validate(self, attrs):
        since, until = attrs.get("since"), attrs.get("until")
        if since and until and since >= until:
            raise serializers.ValidationError({"until": "until must be after since."})
        return attrs


class PriceHistory(ApiView):
    api_area = "catalog"
    pagination_class = PagePagination

    @extend_schema(
        tags=TAGS,
        operation_id="prices_history_list",
        summary="Spot price changes, oldest first (each row in force from valid_from to "
        "valid_until)",
        parameters=[HistoryFilterSerializer],
        responses={200: SpotPriceSerializer(many=True)},
    )
    def get(self, request):
        filters = HistoryFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        until = wanted.get("until") or timezone.now()
        since = wanted.get("since") or until - timedelta(days=7)
        rows = selectors.spot_price_history(since=since, until=until)
        if "region" in wanted:
            rows = rows.filter(region__code=wanted["region"])
        if "instance_type" in wanted:
            rows = rows.filter(instance_type__code=wanted["instance_type"])
        return self.paginated(rows, SpotPriceSerializer)


class CapacityAlertSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    instance_type = serializers.CharField(source="instance_type.code")
    region = serializers.CharField(source="region.code")
    count = serializers.IntegerField()
    max_price = UnitPriceField(allow_null=True)
    created_by = serializers.EmailField(source="created_by.email")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    fired_at = serializers.DateTimeField(
        allow_null=True, help_text="When it was last sent; null: waiting for the capacity."
    )


class CapacityAlertCreateSerializer(StrictSerializer):
    instance_type = StrictCharField(max_length=64)
    region = StrictCharField(max_length=32)
    count = StrictIntegerField(required=False, default=1, min_value=1, max_value=100)
    max_price = StrictCharField(
        required=False,
        allow_null=True,
        max_length=32,
        help_text="Only when the spot price is at most this (decimal string per hour).",
    )


class CapacityAlertList(ApiView):
    api_area = "instances"
    read_permission = "instances.view"
    write_permission = "instances.manage"
    pagination_class = PagePagination
    extra_error_codes = [409]

    @extend_schema(
        tags=TAGS,
        operation_id="capacity_alerts_list",
        summary="The organization's capacity alerts",
        responses={200: CapacityAlertSerializer(many=True)},
    )
    def get(self, request):
        alerts = selectors.capacity_alert_list_for_organization(
            organization_id=self.membership.organization_id
        ).filter(expires_at__gt=timezone.now())
        return self.paginated(alerts, CapacityAlertSerializer)

    @extend_schema(
        tags=TAGS,
        operation_id="capacity_alerts_create",
        summary="Tell me when N x <type> are free in <region>",
        description="One e-mail to you and a capacity.available webhook when it comes true; "
        "then it rests until false again. Ends after 30 days; at most 20 per organization.",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=CapacityAlertCreateSerializer,
        responses={201: CapacityAlertSerializer},
    )
    def post(self, request):
        return idempotent(self, request, lambda: self._create())

    def _create(self) -> Response:
        data = self.validated(CapacityAlertCreateSerializer)
        alert = services.capacity_alert_create(
            membership=self.membership,
            region=data["region"],
            instance_type=data["instance_type"],
            count=data["count"],
            max_price=data.get("max_price"),
        )
        return Response(CapacityAlertSerializer(alert).data, status=status.HTTP_201_CREATED)


class CapacityAlertDetail(ApiView):
    api_area = "instances"
    read_permission = "instances.view"
    write_permission = "instances.manage"

    def _alert(self, pk: int):
        alert = selectors.capacity_alert_get_for_organization(
            organization_id=self.membership.organization_id, pk=pk
        )
        if alert is None:
            raise Http404("No such alert.")
        return alert

    @extend_schema(
        tags=TAGS,
        operation_id="capacity_alerts_get",
        summary="One capacity alert",
        responses={200: CapacityAlertSerializer},
    )
    def get(self, request, pk: int):
        return Response(CapacityAlertSerializer(self._alert(pk)).data)

    @extend_schema(
        tags=TAGS,
        operation_id="capacity_alerts_delete",
        summary="Remove a capacity alert",
        responses={204: None},
    )
    def delete(self, request, pk: int):
        services.capacity_alert_remove(membership=self.membership, alert=self._alert(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
