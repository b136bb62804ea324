"""Operator view of volumes, and the orphan volumes staff decide about.

Staff never delete a customer's volume from here (only its owner does, with a typed
confirmation); an orphan volume (on the backend, owned by no portal volume) is deleted on the
backend only by an explicit staff decision.
"""

from django.contrib import admin, messages
from django.db import transaction
from django.utils import timezone

from portal.audit.services import audit_record
from portal.volumes import tasks
from portal.volumes.models import Attachment, OrphanVolume, Volume, VolumeEvent, VolumeSize


def _enqueue_orphan_delete(orphan_id: int) -> None:
    transaction.on_commit(lambda: tasks.orphan_volume_delete.delay(orphan_id))


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class VolumeEventInline(ReadOnlyInline):
    model = VolumeEvent
    fields = readonly_fields = ("at", "message", "actor")
    ordering = ["-at", "-id"]


class VolumeSizeInline(ReadOnlyInline):
    model = VolumeSize
    fields = readonly_fields = ("size_gb", "start", "end")


class AttachmentInline(ReadOnlyInline):
    model = Attachment
    fields = readonly_fields = ("instance_id", "instance_name", "attached_at", "detached_at")


@admin.register(Volume)
class VolumeAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "organization",
        "region",
        "size_gb",
        "state",
        "backend_id",
        "created_at",
    ]
    list_filter = ["state", "region", "organization"]
    search_fields = ["name", "backend_id", "request_id", "organization__name"]
    list_select_related = ["organization", "region"]
    inlines = [VolumeSizeInline, AttachmentInline, VolumeEventInline]
    readonly_fields = [f.name for f in Volume._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(OrphanVolume)
class OrphanVolumeAdmin(admin.ModelAdmin):
    list_display = ["backend_id", "name", "region", "size_gb", "found_at", "decision", "deleted_at"]
    list_filter = ["decision", "region"]
    readonly_fields = [
        "backend_id",
        "name",
        "region",
        "size_gb",
        "found_at",
        "decision",
        "decided_by",
        "decided_at",
        "deleted_at",
    ]
    actions = ["keep", "delete_on_backend"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def _decide(self, request, queryset, decision: str) -> int:
        count = 0
        for orphan in queryset.filter(deleted_at__isnull=True):
            with transaction.atomic():
                orphan.decision = decision
                orphan.decided_by = request.user
                orphan.decided_at = timezone.now()
                orphan.save(update_fields=["decision", "decided_by", "decided_at"])
                audit_record(
                    action=f"volume.orphan_{decision}",
                    actor=request.user,
                    actor_kind="staff",
                    target=orphan,
                    detail={"backend_id": orphan.backend_id, "size_gb": orphan.size_gb},
                )
                if decision == OrphanVolume.Decision.DELETE:
                    _enqueue_orphan_delete(orphan.pk)
            count += 1
        return count

    @admin.action(description="Keep the selected orphan volumes (do nothing on the backend)")
    def keep(self, request, queryset):
        count = self._decide(request, queryset, OrphanVolume.Decision.KEEP)
        self.message_user(request, f"Keeping {count} orphan volume(s).", messages.INFO)

    @admin.action(description="Delete the selected orphan volumes and their data on the backend")
    def delete_on_backend(self, request, queryset):
        count = self._decide(request, queryset, OrphanVolume.Decision.DELETE)
        self.message_user(
            request, f"Deleting {count} orphan volume(s) on the backend.", messages.WARNING
        )
