"""Operator view of clusters: filter, read the timeline, terminate whole (via the task)."""

from django.contrib import admin, messages

from portal.clusters import services
from portal.clusters.models import Cluster, ClusterEvent
from portal.lib.errors import ApplicationError


class ClusterEventInline(admin.TabularInline):
    model = ClusterEvent
    extra = 0
    can_delete = False
    fields = readonly_fields = ("at", "from_state", "to_state", "message", "actor")
    ordering = ["-at", "-id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "organization",
        "state",
        "node_count",
        "instance_type",
        "region",
        "preemptible",
        "created_at",
    ]
    list_filter = ["state", "region", "organization", "preemptible", "instance_type"]
    search_fields = ["name", "request_id", "organization__name"]
    list_select_related = ["organization", "instance_type", "region"]
    date_hierarchy = "created_at"
    inlines = [ClusterEventInline]
    actions = ["terminate"]
    # The lifecycle owns every field; staff act through the actions. The nodes are instances
    # (filter the instances by the cluster's id).
    readonly_fields = [f.name for f in Cluster._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Terminate the selected clusters (all their nodes)")
    def terminate(self, request, queryset):
        done, refused = 0, []
        for cluster in queryset:
            try:
                services.cluster_terminate_by_staff(user=request.user, cluster=cluster)
            except ApplicationError as error:
                refused.append(f"{cluster.name}: {error.message}")
            else:
                done += 1
        if done:
            self.message_user(request, f"Terminating {done} cluster(s).", messages.SUCCESS)
        for text in refused:
            self.message_user(request, text, messages.WARNING)
