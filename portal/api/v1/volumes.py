"""Volumes: list, create, get, resize, delete (with the typed name), and the timeline.

Rules live in portal.volumes: the same selectors and services as the console pages.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from portal.api.fields import INT64_MAX, StrictCharField, StrictIntegerField, StrictSerializer
from portal.api.idempotency import PARAMETER as IDEMPOTENCY_PARAMETER
from portal.api.idempotency import idempotent
from portal.api.pagination import PagePagination
from portal.api.v1.base import ApiView
from portal.volumes import selectors, services
from portal.volumes.models import NAME_HELP, NAME_MAX_LENGTH, State, Volume

TAGS = ["Volumes"]


class AttachmentSerializer(serializers.Serializer):
    instance_id = serializers.IntegerField()
    instance_name = serializers.CharField()
    attached_at = serializers.DateTimeField()
    detached_at = serializers.DateTimeField(allow_null=True)


class VolumeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    region = serializers.CharField(source="region.code")
    size_gb = serializers.IntegerField()
    state = serializers.ChoiceField(choices=State.choices)
    detail = serializers.CharField(help_text="Why it failed or was lost.")
    mount_path = serializers.CharField(help_text="Where machines see it: /data/<name>.")
    attached_to = serializers.SerializerMethodField(
        help_text="The instances that hold it now (launched with it and not ended)."
    )
    created_at = serializers.DateTimeField()
    deleted_at = serializers.DateTimeField(allow_null=True)

    def get_attached_to(self, volume: Volume) -> list[dict]:
        attachments = [a for a in volume.attachments.all() if a.detached_at is None]
        return list(AttachmentSerializer(attachments, many=True).data)


class VolumeEventSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    message = serializers.CharField()


class VolumeCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=NAME_MAX_LENGTH, help_text=NAME_HELP)
    region = StrictCharField(max_length=32, help_text="e.g. us-east-1")
    size_gb = StrictIntegerField(
        min_value=-INT64_MAX, max_value=INT64_MAX, help_text="A whole number of GB, at least 1."
    )


class VolumeResizeSerializer(StrictSerializer):
    size_gb = StrictIntegerField(
        min_value=-INT64_MAX, max_value=INT64_MAX, help_text="More than the size now."
    )


class VolumeDeleteSerializer(StrictSerializer):
    confirm_name = StrictCharField(
        max_length=200, help_text="The volume's name, typed again: its data is deleted for good."
    )


def _get(view: ApiView, pk: int) -> Volume:
    return selectors.volume_get_for_organization(organization=view.organization, pk=pk)


def _data(volume: Volume) -> dict:
    volume = (
        Volume.objects.select_related("region").prefetch_related("attachments").get(pk=volume.pk)
    )
    return VolumeSerializer(volume).data


class VolumeList(ApiView):
    api_area = "volumes"
    read_permission = "volumes.view"
    write_permission = "volumes.manage"
    extra_error_codes = [409]
    pagination_class = PagePagination

    @extend_schema(
        tags=TAGS,
        operation_id="volumes_list",
        summary="Volumes of the organization, newest first",
        description="Deleted and failed volumes are left out.",
        responses={200: VolumeSerializer(many=True)},
    )
    def get(self, request):
        volumes = selectors.volume_list_for_organization(
            organization=self.organization
        ).prefetch_related("attachments")
        return self.paginated(volumes, VolumeSerializer)

    @extend_schema(
        tags=TAGS,
        operation_id="volumes_create",
        summary="Create a volume",
        description="Counts against the storage quota of the region (409 quota_exceeded "
        "above it) and is made in the background (state creating, then available). Billed "
        "per GB-month, by the second, until deleted.",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=VolumeCreateSerializer,
        responses={201: VolumeSerializer},
    )
    def post(self, request):
        return idempotent(self, request, lambda: self._create(request))

    def _create(self, request) -> Response:
        data = self.validated(VolumeCreateSerializer)
        volume = services.volume_create(
            membership=self.membership,
            region=data["region"],
            name=data["name"],
            size_gb=data["size_gb"],
        )
        return Response(_data(volume), status=status.HTTP_201_CREATED)


class VolumeDetail(ApiView):
    api_area = "volumes"
    read_permission = "volumes.view"
    write_permission = "volumes.manage"
    extra_error_codes = [409]

    @extend_schema(
        tags=TAGS,
        operation_id="volumes_get",
        summary="One volume",
        responses={200: VolumeSerializer},
    )
    def get(self, request, pk: int):
        return Response(_data(_get(self, pk)))


class VolumeResize(ApiView):
    api_area = "volumes"
    read_permission = "volumes.view"
    write_permission = "volumes.manage"
    extra_error_codes = [409]

    @extend_schema(
        tags=TAGS,
        operation_id="volumes_resize",
        summary="Grow a volume",
        description="Attached or not. A volume never shrinks: a smaller or equal size is a "
        "400. The growth counts against the storage quota.",
        request=VolumeResizeSerializer,
        responses={200: VolumeSerializer},
    )
    def post(self, request, pk: int):
        volume = _get(self, pk)
        data = self.validated(VolumeResizeSerializer)
        services.volume_resize(membership=self.membership, volume=volume, size_gb=data["size_gb"])
        return Response(_data(volume))


class VolumeDelete(ApiView):
    api_area = "volumes"
    read_permission = "volumes.view"
    write_permission = "volumes.manage"
    extra_error_codes = [409]

    @extend_schema(
        tags=TAGS,
        operation_id="volumes_delete",
        summary="Delete a volume and its data",
        description="Needs the volume's name in confirm_name. Refused (409 attached) while an "
        "instance that has not ended holds it. Billing stops at once.",
        request=VolumeDeleteSerializer,
        responses={202: VolumeSerializer},
    )
    def post(self, request, pk: int):
        volume = _get(self, pk)
        data = self.validated(VolumeDeleteSerializer)
        services.volume_delete(
            membership=self.membership, volume=volume, confirm_name=data["confirm_name"]
        )
        return Response(_data(volume), status=status.HTTP_202_ACCEPTED)


class VolumeEvents(ApiView):
    api_area = "volumes"
    read_permission = "volumes.view"

    @extend_schema(
        tags=TAGS,
        operation_id="volumes_events",
        summary="The volume's timeline, newest first",
        responses={200: VolumeEventSerializer(many=True)},
    )
    def get(self, request, pk: int):
        events = selectors.volume_event_list_for_volume(volume=_get(self, pk))[:500]
        return Response(VolumeEventSerializer(events, many=True).data)
