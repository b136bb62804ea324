"""Writes for volumes: create, resize up, delete (typed confirmation, never while attached),
attach at launch and detach when the machine ends.

Every write that needs the backend records the change first, counts the storage against the
quota in the same transaction (row locks, as for GPUs), and enqueues a task on commit
(`portal.volumes.tasks`), which calls the backend through `portal.volumes.sync`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from portal.accounts.models import User
from portal.audit.services import audit_record
from portal.catalog.models import Region
from portal.lib.errors import ApplicationError
from portal.orgs.models import Membership, Organization
from portal.provisioning import driver_supports_volumes, get_backend_class
from portal.quotas.services import quota_storage_release, quota_storage_reserve
from portal.volumes import signals
from portal.volumes.models import (
    LIVE_STATES,
    NAME_HELP,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    Attachment,
    State,
    Volume,
    VolumeEvent,
    VolumeSize,
)
from portal.web.sql import Among, ReadBuiltOnce

logger = logging.getLogger(__name__)


def backend_has_volumes() -> bool:
    """Whether the configured backend has the volume capability (told from its class)."""
    try:
        return driver_supports_volumes(get_backend_class())
    except ValueError:
        return False


def backend_shares_volumes() -> bool:
    """Whether a volume may be attached to several live machines at once: the setting
    `VOLUMES_SHARED` if set, else what the backend's driver says (`shared_volumes`)."""
    configured = getattr(settings, "VOLUMES_SHARED", None)
    if configured is not None:
        return bool(configured)
    try:
        driver = get_backend_class()
    except ValueError:
        return False
    return bool(getattr(driver, "shared_volumes", False))


def _check_may_manage(membership: Membership) -> None:
    if not membership.can("volumes.manage"):
        raise ApplicationError(
            "Your role in this organization cannot create, resize or delete volumes.",
            code="forbidden",
        )


def check_size(value, *, field: str = "size_gb") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApplicationError("Give the size as a whole number of GB.", field=field)
    if value < 1:
        raise ApplicationError("A volume needs a size of at least 1 GB.", field=field)
    if value > settings.QUOTA_MAX_STORAGE_GB:
        raise ApplicationError(
            f"A volume can be at most {settings.QUOTA_MAX_STORAGE_GB} GB.", field=field
        )
    return value


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("Give the volume a name.", field="name")
    if len(name) > NAME_MAX_LENGTH or not NAME_PATTERN.match(name):
        raise ApplicationError(f"“{name[:80]}” is not a valid name: {NAME_HELP}", field="name")
    return name


def _resolve_region(region: Region | str) -> Region:
    if isinstance(region, Region):
        found: Region | None = region
    else:
        found = Region.objects.filter(code=str(region or "").strip()).first()
    if found is None or not found.active:
        raise ApplicationError(f"There is no region {region!s}.", field="region")
    return found


def _event(volume: Volume, message: str, actor: User | None = None) -> None:
    VolumeEvent.objects.create(volume=volume, message=message[:500], actor=actor)


def _enqueue(task_name: str, volume_id: int) -> None:
    from portal.volumes import tasks

    task = getattr(tasks, task_name)
    transaction.on_commit(lambda: task.delay(volume_id))


def volume_create(
    *, membership: Membership, region: Region | str, name: str, size_gb: int
) -> Volume:
    """Record a volume, count its size against the storage quota, and have the backend make it.

    Bad input, a name in use, or a size over the quota: ApplicationError, nothing changed.
    """
    _check_may_manage(membership)
    name = _clean_name(name)
    size_gb = check_size(size_gb)
    region = _resolve_region(region)
    if not backend_has_volumes():
        raise ApplicationError(
            "This cloud's provisioning backend has no volumes.", code="unsupported"
        )
    organization = membership.organization
    with transaction.atomic():
        quota_storage_reserve(organization=organization, region=region, gb=size_gb)
        taken = Volume.objects.filter(
            organization=organization, region=region, name=name, state__in=LIVE_STATES
        ).exists()
        if taken:
            raise ApplicationError(
                f"There is already a volume named “{name}” in {region.code}. Choose another name.",
                field="name",
            )
        now = timezone.now()
        volume = Volume.objects.create(
            organization=organization,
            region=region,
            name=name,
            size_gb=size_gb,
            created_by=membership.user,
            created_at=now,
        )
        VolumeSize.objects.create(volume=volume, size_gb=size_gb, start=now)
        _event(volume, f"Created: {size_gb} GB in {region.code}.", membership.user)
        audit_record(
            action="volume.created",
            organization=organization,
            actor=membership,
            target=volume,
            detail={"region": region.code, "size_gb": size_gb},
        )
        signals.volume_changed.send(sender=Volume, volume=volume, event="volume.created")
        _enqueue("volume_create", volume.pk)
    return volume


def volume_resize(*, membership: Membership, volume: Volume, size_gb: int) -> Volume:
    """Grow a volume to `size_gb` (attached or not). Smaller or equal sizes are refused."""
    _check_may_manage(membership)
    size_gb = check_size(size_gb)
    if membership.organization_id != volume.organization_id:
        raise ApplicationError("There is no such volume.", code="not_found")
    with transaction.atomic():
        volume = Volume.objects.select_for_update().select_related("region").get(pk=volume.pk)
        if volume.state not in LIVE_STATES:
            raise ApplicationError(
                f"{volume.name} is {volume.get_state_display().lower()}; "
                "only a volume that exists can grow.",
                code="invalid_state",
            )
        if size_gb < volume.size_gb:
            raise ApplicationError(
                f"{volume.name} has {volume.size_gb} GB and a volume only grows: give more "
                f"than {volume.size_gb} GB. To have less, copy the data to a smaller volume.",
                field="size_gb",
            )
        if size_gb == volume.size_gb:
            raise ApplicationError(f"{volume.name} already has {size_gb} GB.", field="size_gb")
        quota_storage_reserve(
            organization=volume.organization, region=volume.region, gb=size_gb - volume.size_gb
        )
        now = timezone.now()
        old = volume.size_gb
        VolumeSize.objects.filter(volume=volume, end__isnull=True).update(end=now)
        VolumeSize.objects.create(volume=volume, size_gb=size_gb, start=now)
        volume.size_gb = size_gb
        volume.save(update_fields=["size_gb"])
        _event(volume, f"Resized from {old} GB to {size_gb} GB.", membership.user)
        audit_record(
            action="volume.resized",
            organization=volume.organization,
            actor=membership,
            target=volume,
            detail={"from": old, "to": size_gb},
        )
        signals.volume_changed.send(sender=Volume, volume=volume, event="volume.resized")
        _enqueue("volume_resize", volume.pk)
    return volume


def volume_active_attachments(*, volume: Volume) -> list[Attachment]:
    return list(volume.attachments.filter(detached_at__isnull=True))


def volume_delete(*, membership: Membership, volume: Volume, confirm_name: str) -> Volume:
    """Delete a volume and its data, on the owner's typed confirmation (its name), never while
    it is attached to a machine that has not ended. Billing and the quota stop now."""
    _check_may_manage(membership)
    if membership.organization_id != volume.organization_id:
        raise ApplicationError("There is no such volume.", code="not_found")
    if (confirm_name or "").strip() != volume.name:
        raise ApplicationError(
            f"Type the volume's name, {volume.name}, to confirm: its data is deleted for good.",
            field="confirm_name",
        )
    with transaction.atomic():
        volume = Volume.objects.select_for_update().select_related("region").get(pk=volume.pk)
        if volume.state not in (*LIVE_STATES, State.LOST):
            raise ApplicationError(
                f"{volume.name} is already {volume.get_state_display().lower()}.",
                code="invalid_state",
            )
        attached = volume_active_attachments(volume=volume)
        if attached:
            names = ", ".join(a.instance_name or f"#{a.instance_id}" for a in attached)
            raise ApplicationError(
                f"{volume.name} is attached to {names}. Terminate "
                f"{'that instance' if len(attached) == 1 else 'those instances'} first; the "
                "volume is free once it has ended.",
                code="attached",
            )
        now = timezone.now()
        was_lost = volume.state == State.LOST
        _end_billing(volume, now)
        volume.state = State.DELETED if was_lost or not volume.backend_id else State.DELETING
        volume.deleted_at = now
        volume.save(update_fields=["state", "deleted_at"])
        _event(volume, "Deleted by its owner.", membership.user)
        audit_record(
            action="volume.deleted",
            organization=volume.organization,
            actor=membership,
            target=volume,
            detail={"size_gb": volume.size_gb},
        )
        signals.volume_changed.send(sender=Volume, volume=volume, event="volume.deleted")
        # A volume still being created is deleted by the create task once the backend has it.
        if volume.state == State.DELETING:
            _enqueue("volume_delete", volume.pk)
    return volume


def _end_billing(volume: Volume, at: datetime) -> None:
    """Close the open size period and give the storage back to the quota (once: only a live
    volume has an open period)."""
    closed = VolumeSize.objects.filter(volume=volume, end__isnull=True).update(end=at)
    if closed and volume.state != State.LOST:
        quota_storage_release(
            organization=volume.organization, region=volume.region, gb=volume.size_gb
        )


# --- attaching at launch ----------------------------------------------------------------------


def volumes_for_launch(
    *, organization: Organization, region: Region, volume_ids: Sequence[int | str]
) -> list[Volume]:
    """The organization's volumes to attach to a machine launching in `region`, locked until
    the caller's transaction ends. Another organization's volume, or an unknown one, is
    "no such volume"; one in another region, not ready, or attached read-write to another
    live machine (unless the backend shares volumes) is refused with a clear message."""
    if not volume_ids:
        return []
    ids = []
    for raw in volume_ids:
        try:
            ids.append(int(raw))
        except (TypeError, ValueError):
            raise ApplicationError(
                f"There is no volume {raw!s}.", field="volumes", code="not_found"
            ) from None
    if len(set(ids)) != len(ids):
        raise ApplicationError("A volume is listed twice.", field="volumes")
    found = {
        v.pk: v
        for v in Volume.objects.select_for_update(of=("self",))
        .select_related("region")
        .filter(organization=organization, pk__in=ids)
        .order_by("pk")
    }
    shared = backend_shares_volumes()
    volumes = []
    for pk in ids:
        volume = found.get(pk)
        if volume is None:
            raise ApplicationError(
                f"There is no volume #{pk} in this organization.",
                field="volumes",
                code="not_found",
            )
        if volume.region_id != region.pk:
            raise ApplicationError(
                f"Volume {volume.name} is in {volume.region.code}; this instance launches in "
                f"{region.code}. A volume attaches only in its own region.",
                field="volumes",
            )
        if volume.state != State.AVAILABLE:
            what = (
                "still being created; try again in a moment"
                if volume.state == State.CREATING
                else volume.get_state_display().lower()
            )
            raise ApplicationError(f"Volume {volume.name} is {what}.", field="volumes")
        holders = volume_active_attachments(volume=volume)
        if holders and not shared:
            holder = holders[0].instance_name or f"#{holders[0].instance_id}"
            raise ApplicationError(
                f"Volume {volume.name} is attached to {holder}, which has not ended. This "
                "cloud attaches a volume read-write to one machine at a time: terminate "
                f"{holder} first, or launch without the volume.",
                field="volumes",
                code="attached",
            )
        volumes.append(volume)
    return volumes


def volumes_attach(*, volumes: Iterable[Volume], instance_id: int, instance_name: str) -> None:
    """Record the attachments of a launch (in the launch's transaction)."""
    for volume in volumes:
        Attachment.objects.get_or_create(
            volume=volume, instance_id=instance_id, defaults={"instance_name": instance_name}
        )
        _event(volume, f"Attached to instance {instance_name} at {volume.mount_path}.")


def volumes_detach(*, instance_id: int, at: datetime | None = None) -> int:
    """The machine ended: its volumes are free. Returns how many were detached."""
    return volumes_detach_many(instance_ids=[instance_id], at=at)


# Read at every machine's end (most have no volume): built once.
_ATTACHED = ReadBuiltOnce(
    lambda ids: Attachment.objects.filter(
        Among(F("instance_id"), ids), detached_at__isnull=True
    ).select_related("volume"),
    ids=list,
)


def volumes_detach_many(*, instance_ids: Iterable[int], at: datetime | None = None) -> int:
    """`volumes_detach` of many machines that ended together (one read when none has any)."""
    at = at or timezone.now()
    attachments = _ATTACHED.objects(ids=list(instance_ids))
    for attachment in attachments:
        attachment.detached_at = at
        attachment.save(update_fields=["detached_at"])
        _event(
            attachment.volume,
            f"Detached: instance {attachment.instance_name or attachment.instance_id} ended.",
        )
    return len(attachments)
