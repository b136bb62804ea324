"""Operator view of instances: filter, read the timeline, terminate or resync (via tasks)."""

from django.contrib import admin, messages

from portal.instances import services
from portal.instances.models import Instance, InstanceEvent
from portal.lib.errors import ApplicationError


class InstanceEventInline(admin.TabularInline):
    model = InstanceEvent
    extra = 0
    can_delete = False
    fields = ["at", "from_state", "to_state", "message", "actor"]
    readonly_fields = fields
    ordering = ["-at", "-id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "organization",
        "state",
        "instance_type",
        "region",
        "preemptible",
        "ip",
        "backend_id",
        "created_at",
    ]
    list_filter = ["state", "region", "organization", "preemptible", "instance_type"]
    search_fields = ["name", "backend_id", "request_id", "organization__name", "ip"]
    list_select_related = ["organization", "instance_type", "region"]
    date_hierarchy = "created_at"
    inlines = [InstanceEventInline]
    actions = ["terminate", "resync"]
    # The lifecycle owns every field; staff act through the actions, never by editing rows.
    readonly_fields = [f.name for f in Instance._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Terminate the selected instances")
    def terminate(self, request, queryset):
        done, refused = 0, []
        for instance in queryset:
            try:
                services.instance_terminate_by_staff(user=request.user, instance=instance)
            except ApplicationError as error:
                refused.append(f"{instance.name}: {error.message}")
            else:
                done += 1
        if done:
            self.message_user(request, f"Terminating {done} instance(s).", messages.SUCCESS)
        for text in refused:
            self.message_user(request, text, messages.WARNING)

    @admin.action(description="Resync the selected instances with the backend")
    def resync(self, request, queryset):
        count = 0
        for instance in queryset:
            services.instance_resync(instance=instance)
            count += 1
        self.message_user(request, f"Asked the backend about {count} instance(s).", messages.INFO)
