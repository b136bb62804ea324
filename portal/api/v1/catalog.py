"""The catalog (what can be launched, where, at which price now) and live availability."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from portal.api.fields import UnitPriceField
from portal.api.v1.base import ApiView
from portal.catalog.models import Image
from portal.catalog.selectors import active_regions, catalog_offers, monthly
from portal.instances.capacity import free_capacity

TAGS = ["Catalog"]


class GpuModelSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    memory_gb = serializers.IntegerField()


class PriceSerializer(serializers.Serializer):
    currency = serializers.CharField()
    on_demand_hourly = UnitPriceField()
    preemptible_hourly = UnitPriceField()
    stopped_hourly = UnitPriceField()
    on_demand_monthly = serializers.SerializerMethodField()
    preemptible_monthly = serializers.SerializerMethodField()
    valid_from = serializers.DateTimeField()

    def get_on_demand_monthly(self, price) -> str:
        return str(monthly(price.on_demand_hourly))

    def get_preemptible_monthly(self, price) -> str:
        return str(monthly(price.preemptible_hourly))


class InstanceTypeSerializer(serializers.Serializer):
    code = serializers.CharField(source="instance_type.code")
    name = serializers.CharField(source="instance_type.name")
    gpu_model = GpuModelSerializer()
    gpu_count = serializers.IntegerField(source="instance_type.gpu_count")
    vcpus = serializers.IntegerField(source="instance_type.vcpus")
    memory_gb = serializers.IntegerField(source="instance_type.memory_gb")
    local_disk_gb = serializers.IntegerField(source="instance_type.local_disk_gb")
    regions = serializers.SerializerMethodField(help_text="Codes of the regions it is offered in.")
    price = PriceSerializer(help_text="The price in force now.")

    def get_regions(self, offer) -> list[str]:
        return [region.code for region in offer.regions]


class RegionSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    location = serializers.CharField()


class ImageSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()


class AvailabilityEntrySerializer(serializers.Serializer):
    region = serializers.CharField()
    instance_type = serializers.CharField()
    free_instances = serializers.IntegerField(
        allow_null=True,
        help_text="Instances of this type that can start here now; null when unknown.",
    )


class AvailabilitySerializer(serializers.Serializer):
    taken_at = serializers.DateTimeField(
        allow_null=True, help_text="When the backend was last asked; null if never."
    )
    fresh = serializers.BooleanField(help_text="Whether the snapshot is recent enough to trust.")
    entries = AvailabilityEntrySerializer(many=True)


class InstanceTypeList(ApiView):
    @extend_schema(
        tags=TAGS,
        operation_id="instance_types_list",
        summary="Instance types that can be launched now, with their prices",
        responses={200: InstanceTypeSerializer(many=True)},
    )
    def get(self, request):
        return Response(InstanceTypeSerializer(catalog_offers(), many=True).data)


class RegionList(ApiView):
    @extend_schema(
        tags=TAGS,
        operation_id="regions_list",
        summary="Regions",
        responses={200: RegionSerializer(many=True)},
    )
    def get(self, request):
        return Response(RegionSerializer(active_regions(), many=True).data)


class ImageList(ApiView):
    @extend_schema(
        tags=TAGS,
        operation_id="images_list",
        summary="Machine images",
        responses={200: ImageSerializer(many=True)},
    )
    def get(self, request):
        images = Image.objects.filter(active=True).order_by("name")
        return Response(ImageSerializer(images, many=True).data)


class Availability(ApiView):
    @extend_schema(
        tags=TAGS,
        operation_id="availability_get",
        summary="Free capacity per region and instance type",
        description="From the snapshot of the backend's capacity that Backfill refreshes "
        "every 30 seconds, less the launches made since.",
        responses={200: AvailabilitySerializer},
    )
    def get(self, request):
        capacity = free_capacity()
        snapshot = capacity.snapshot
        entries = [
            {
                "region": region.code,
                "instance_type": offer.instance_type.code,
                "free_instances": capacity.get(region.code, offer.instance_type.code),
            }
            for offer in catalog_offers()
            for region in offer.regions
        ]
        data = {
            "taken_at": snapshot.taken_at if snapshot else None,
            "fresh": bool(snapshot and snapshot.is_fresh),
            "entries": entries,
        }
        return Response(AvailabilitySerializer(data).data)
