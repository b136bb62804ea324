"""Reads for volumes, scoped to one organization: another organization's volume is a 404."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from django.http import Http404

from portal.catalog.models import Region
from portal.orgs.models import Organization
from portal.quotas.models import Quota
from portal.volumes.models import LIVE_STATES, Attachment, State, Volume, VolumeEvent


def volume_list_for_organization(
    *, organization: Organization, include_deleted: bool = False
) -> QuerySet[Volume]:
    volumes = Volume.objects.filter(organization=organization).select_related("region")
    if not include_deleted:
        volumes = volumes.exclude(state__in=[State.DELETED, State.FAILED])
    return volumes


def volume_get_for_organization(*, organization: Organization, pk: int) -> Volume:
    volume = (
        Volume.objects.filter(organization=organization, pk=pk)
        .select_related("region", "organization", "created_by")
        .first()
    )
    if volume is None:
        raise Http404("No such volume")
    return volume


def volume_attachable_for_organization(
    *, organization: Organization, region: Region | None = None
) -> QuerySet[Volume]:
    """The volumes a launch may choose: available, in the region if given."""
    volumes = volume_list_for_organization(organization=organization).filter(state=State.AVAILABLE)
    if region is not None:
        volumes = volumes.filter(region=region)
    return volumes.order_by("region__code", "name")


def volume_attachment_list_for_volume(*, volume: Volume) -> QuerySet[Attachment]:
    return volume.attachments.all().order_by("-attached_at")


def volume_attachment_list_for_instance(*, instance_id: int) -> QuerySet[Attachment]:
    return Attachment.objects.filter(instance_id=instance_id).select_related("volume")


def volume_attachments_by_instance(*, instance_ids: list[int]) -> dict[int, list[Attachment]]:
    """The attachments of many instances, by instance id, in one query (for lists)."""
    found: dict[int, list[Attachment]] = {instance_id: [] for instance_id in instance_ids}
    for attachment in (
        Attachment.objects.filter(instance_id__in=instance_ids)
        .select_related("volume")
        .order_by("id")
    ):
        found[attachment.instance_id].append(attachment)
    return found


def volume_backend_ids_for_instance(*, instance_id: int) -> list[str]:
    """The backend ids of the volumes attached to a machine, in the order they were chosen."""
    return [
        a.volume.backend_id
        for a in Attachment.objects.filter(instance_id=instance_id)
        .select_related("volume")
        .order_by("id")
    ]


def volume_event_list_for_volume(*, volume: Volume) -> QuerySet[VolumeEvent]:
    return volume.events.select_related("actor").order_by("-at", "-id")


@dataclass(frozen=True)
class StorageUse:
    region: Region
    limit_gb: int
    used_gb: int

    @property
    def free_gb(self) -> int:
        return max(0, self.limit_gb - self.used_gb)


def storage_use_for_organization(*, organization: Organization) -> list[StorageUse]:
    """The storage limit and use per region (regions without a limit show 0)."""
    rows = {
        q.region_id: q
        for q in Quota.objects.filter(organization=organization, gpu_model__isnull=True)
    }
    return [
        StorageUse(
            region=region,
            limit_gb=rows[region.pk].storage_limit_gb if region.pk in rows else 0,
            used_gb=rows[region.pk].storage_used_gb if region.pk in rows else 0,
        )
        for region in Region.objects.filter(active=True).order_by("code")
    ]


def volume_live_total_gb(*, organization: Organization) -> int:
    return sum(
        volume_list_for_organization(organization=organization)
        .filter(state__in=LIVE_STATES)
        .values_list("size_gb", flat=True)
    )
