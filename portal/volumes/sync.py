"""The volumes app's backend calls, one function per task (`portal.volumes.tasks`).

Each may run twice: it checks the volume's state first, and the backend's calls are idempotent
(create on the volume's request id, resize to a size, delete of a deleted volume). Transient
errors propagate to the task, which retries; permanent ones leave a clear state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from portal.notifications.services import notify
from portal.provisioning import (
    CapacityError,
    InvalidState,
    NotFound,
    PermanentError,
    TransientError,
    VolumeState,
    get_backend,
    supports_volumes,
)
from portal.provisioning import (
    Volume as BackendVolume,
)
from portal.quotas.services import quota_storage_release
from portal.volumes import signals
from portal.volumes.models import LIVE_STATES, OrphanVolume, State, Volume, VolumeEvent, VolumeSize

logger = logging.getLogger(__name__)


def _backend():
    backend = get_backend()
    if not supports_volumes(backend):
        raise PermanentError("the provisioning backend has no volumes")
    return backend


def _event(volume: Volume, message: str) -> None:
    VolumeEvent.objects.create(volume=volume, message=message[:500])


def create(volume_id: int) -> None:
    """Have the backend make the volume (idempotent on its request id)."""
    volume = Volume.objects.select_related("organization", "region").filter(pk=volume_id).first()
    if volume is None or volume.backend_id or volume.state not in (State.CREATING, State.DELETED):
        return
    backend = _backend()
    try:
        backend_id = backend.volume_create(
            request_id=str(volume.request_id),
            region=volume.region.code,
            size_gb=volume.size_gb,
            name=volume.name,
            account=volume.organization.slug,
        )
    except (CapacityError, PermanentError) as exc:
        if volume.state == State.DELETED:
            return  # deleted before the backend had it: nothing to make
        _fail(volume_id, exc)
        return
    mount_path = backend.volume_get(backend_id).mount_path
    with transaction.atomic():
        volume = Volume.objects.select_for_update().get(pk=volume_id)
        if volume.backend_id:
            return
        volume.backend_id = backend_id
        volume.backend_size_gb = volume.size_gb if volume.state != State.DELETED else 0
        volume.backend_mount_path = mount_path[:300]
        volume.synced_at = timezone.now()
        fields = ["backend_id", "backend_size_gb", "backend_mount_path", "synced_at"]
        if volume.state == State.CREATING:
            volume.state = State.AVAILABLE
            fields.append("state")
            _event(volume, f"Available: machines see it at {volume.mount_path}.")
            signals.volume_changed.send(sender=Volume, volume=volume, event="volume.available")
        volume.save(update_fields=fields)
        if volume.state == State.DELETED:
            # Deleted while it was being made: delete it on the backend too.
            volume.state = State.DELETING
            volume.save(update_fields=["state"])
            from portal.volumes import tasks

            transaction.on_commit(lambda: tasks.volume_delete.delay(volume_id))
    if volume.state == State.AVAILABLE and volume.backend_size_gb < volume.size_gb:
        resize(volume_id)  # it grew while being made


def _fail(volume_id: int, error: Exception) -> None:
    with transaction.atomic():
        volume = Volume.objects.select_for_update().select_related("region").get(pk=volume_id)
        if volume.state != State.CREATING:
            return
        now = timezone.now()
        # Never usable: nothing is billed (the size periods end where they began).
        sizes = VolumeSize.objects.filter(volume=volume)
        sizes.update(end=volume.created_at, start=volume.created_at)
        quota_storage_release(
            organization=volume.organization, region=volume.region, gb=volume.size_gb
        )
        volume.state = State.FAILED
        volume.detail = f"The backend could not make the volume: {error}"[:500]
        volume.deleted_at = now
        volume.save(update_fields=["state", "detail", "deleted_at"])
        _event(volume, volume.detail + " Nothing was billed.")
        signals.volume_changed.send(sender=Volume, volume=volume, event="volume.failed")
        notify("volume_failed", volume_id=volume.pk)


def resize(volume_id: int) -> None:
    """Bring the backend's size up to the volume's."""
    volume = Volume.objects.filter(pk=volume_id).first()
    if volume is None or volume.state != State.AVAILABLE or not volume.backend_id:
        return
    if volume.backend_size_gb >= volume.size_gb:
        return
    try:
        _backend().volume_resize(volume.backend_id, volume.size_gb)
    except (CapacityError, InvalidState, NotFound) as exc:
        _event(volume, f"The backend could not grow the volume yet: {exc}. Retrying.")
        raise TransientError(str(exc)) from exc
    Volume.objects.filter(pk=volume_id, backend_size_gb__lt=volume.size_gb).update(
        backend_size_gb=volume.size_gb, synced_at=timezone.now()
    )


def delete(volume_id: int) -> None:
    """Delete the volume on the backend, then mark it deleted."""
    volume = Volume.objects.filter(pk=volume_id).first()
    if volume is None or volume.state != State.DELETING:
        return
    if volume.backend_id:
        try:
            _backend().volume_delete(volume.backend_id)
        except InvalidState as exc:
            # A machine that just ended may still hold it on the backend for a moment.
            raise TransientError(str(exc)) from exc
    with transaction.atomic():
        volume = Volume.objects.select_for_update().get(pk=volume_id)
        if volume.state != State.DELETING:
            return
        volume.state = State.DELETED
        volume.save(update_fields=["state"])
        _event(volume, "Deleted on the backend with its data.")


# --- reconciliation ---------------------------------------------------------------------------


@dataclass
class Report:
    checked: int = 0
    lost: list[int] = field(default_factory=list)
    adopted: list[int] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "checked": self.checked,
            "lost": len(self.lost),
            "adopted": len(self.adopted),
            "orphans": len(self.orphans),
        }


def reconcile() -> Report:
    """Compare the portal's volumes with the backend's `volume_list()`.

    - a live volume the backend does not have (or has deleted): lost, reported to its
      organization's owners and admins and to staff; billing stops;
    - a volume being created that the backend has under its request id: adopted;
    - a backend volume no portal volume owns: recorded as an orphan for staff to decide
      (never deleted here: data is at stake).
    """
    report = Report()
    backend = get_backend()
    if not supports_volumes(backend):
        return report
    held = {v.backend_id: v for v in backend.volume_list()}
    by_request = {v.request_id: v for v in held.values()}
    known_ids = set(Volume.objects.exclude(backend_id="").values_list("backend_id", flat=True))
    for volume in Volume.objects.filter(state__in=LIVE_STATES).select_related("region"):
        report.checked += 1
        if not volume.backend_id:
            found = by_request.get(str(volume.request_id))
            if found is not None and _adopt(volume.pk, found):
                report.adopted.append(volume.pk)
                known_ids.add(found.backend_id)
            continue
        remote = held.get(volume.backend_id)
        gone = remote is None or remote.state == VolumeState.DELETED
        if gone and _mark_lost(volume.pk):
            report.lost.append(volume.pk)
    for backend_id, remote in held.items():
        if backend_id in known_ids or remote.state == VolumeState.DELETED:
            continue
        orphan, created = OrphanVolume.objects.get_or_create(
            backend_id=backend_id,
            defaults={"name": remote.name, "region": remote.region, "size_gb": remote.size_gb},
        )
        if created:
            report.orphans.append(backend_id)
            notify("volume_orphan_found", orphan_id=orphan.pk)
    return report


def _adopt(volume_id: int, remote: BackendVolume) -> bool:
    with transaction.atomic():
        volume = Volume.objects.select_for_update().get(pk=volume_id)
        if volume.backend_id or volume.state != State.CREATING:
            return False
        volume.backend_id = remote.backend_id
        volume.backend_size_gb = remote.size_gb
        volume.backend_mount_path = remote.mount_path[:300]
        volume.state = State.AVAILABLE
        volume.synced_at = timezone.now()
        volume.save(
            update_fields=[
                "backend_id",
                "backend_size_gb",
                "backend_mount_path",
                "state",
                "synced_at",
            ]
        )
        _event(volume, "Available (found on the backend by reconciliation).")
        signals.volume_changed.send(sender=Volume, volume=volume, event="volume.available")
    return True


def _mark_lost(volume_id: int) -> bool:
    with transaction.atomic():
        volume = (
            Volume.objects.select_for_update(of=("self",))
            .select_related("organization", "region")
            .get(pk=volume_id)
        )
        if volume.state not in LIVE_STATES:
            return False
        now = timezone.now()
        # Billing stops: nothing to bill for data that is gone. The storage goes back too.
        closed = VolumeSize.objects.filter(volume=volume, end__isnull=True).update(end=now)
        if closed:
            quota_storage_release(
                organization=volume.organization, region=volume.region, gb=volume.size_gb
            )
        volume.state = State.LOST
        volume.detail = "The backend no longer has this volume."
        volume.save(update_fields=["state", "detail"])
        _event(volume, "Lost: the backend no longer has it. Billing stopped; staff were told.")
        signals.volume_changed.send(sender=Volume, volume=volume, event="volume.lost")
        notify("volume_lost", volume_id=volume.pk)
    logger.warning("volume %s lost on the backend", volume_id)
    return True


def orphan_delete(orphan_id: int) -> None:
    """Staff decided: delete the orphan on the backend."""
    orphan = OrphanVolume.objects.filter(pk=orphan_id).first()
    if orphan is None or orphan.deleted_at is not None:
        return
    if orphan.decision != OrphanVolume.Decision.DELETE:
        return
    _backend().volume_delete(orphan.backend_id)
    OrphanVolume.objects.filter(pk=orphan_id).update(deleted_at=timezone.now())
