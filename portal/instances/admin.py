"""Operator view of instances: filter, read the timeline, terminate or resync (via tasks)."""

from typing import Any, ClassVar

from django.contrib import admin, messages
from django.db.models import F

from portal.instances import services
from portal.instances.models import Instance, InstanceEvent
from portal.lib.errors import ApplicationError
from portal.orgs.admin_tools import (
    OrganizationFilter,
    organization_filter_link,
    search_with_organizations,
)
from portal.web.admin import CatalogFilter, FleetListAdmin


class InstanceEventInline(admin.TabularInline):
    model = InstanceEvent
    extra = 0
    can_delete = False
    fields = readonly_fields = ("at", "from_state", "to_state", "message", "actor")
    ordering = ["-at", "-id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Instance)
class InstanceAdmin(FleetListAdmin):
    list_display = [
        "name",
        "organization_link",
        "state",
        "type_name",
        "region_code",
        "preemptible",
        "ip",
        "backend_id",
        "created_at",
    ]
    # At fleet scale (100,000 instances, 1,000 organizations): no filter listing every
    # organization and no date hierarchy (a DISTINCT over the fleet per page); the search
    # reads trigram indexes (migration 0010) and the matching organizations' ids.
    list_filter = [
        "state",
        ("region", CatalogFilter),
        OrganizationFilter,
        "preemptible",
        ("instance_type", CatalogFilter),
        "created_at",
    ]
    search_fields = ["name", "backend_id", "request_id", "ip", "organization__name"]
    search_help_text = "Name, backend id, request id, IP address or organization"
    # What the rows show (and the checkbox's label, the name), not the 40 columns of an
    # instance; its organization's, type's and region's names as values of the row.
    list_select_related = ()
    list_columns = (
        "name",
        "organization",
        "state",
        "preemptible",
        "ip",
        "backend_id",
        "created_at",
    )
    list_annotations: ClassVar[dict[str, Any]] = {
        "organization_name": F("organization__name"),
        "type_name": F("instance_type__name"),
        "region_code": F("region__code"),
    }
    list_per_page = 50  # as the clouds' consoles page a fleet; a row costs ~0.3 ms to render
    inlines = [InstanceEventInline]
    actions = ["terminate", "resync"]
    # The lifecycle owns every field; staff act through the actions, never by editing rows.
    readonly_fields = [f.name for f in Instance._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Organization", ordering="organization__name")
    def organization_link(self, obj: Instance) -> str:
        return organization_filter_link(obj.organization_id, obj.organization_name)  # type: ignore[attr-defined]  # list_annotations

    @admin.display(description="Instance type", ordering="instance_type")
    def type_name(self, obj: Instance) -> str:
        return obj.type_name  # type: ignore[attr-defined]  # list_annotations

    @admin.display(description="Region", ordering="region__code")
    def region_code(self, obj: Instance) -> str:
        # The code alone: "US East (us-east-1)" in every row kept the list from fitting a laptop.
        return obj.region_code  # type: ignore[attr-defined]  # list_annotations

    def get_search_results(self, request, queryset, search_term):
        own = [field for field in self.search_fields if not field.startswith("organization__")]
        return search_with_organizations(request, queryset, search_term, own), False

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
