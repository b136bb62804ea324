"""Staff read the whole audit log here. Nobody adds, changes or deletes an entry: the change view
only shows it, a POST to it or to the delete view is refused (403), and there is no delete action.

Staff who are not superusers need the "audit | audit entry | Can view" permission.
"""

import json

from django.contrib import admin
from django.utils.html import format_html

from portal.audit.actions import ACTIONS, GROUPS
from portal.audit.models import AuditEntry


class ActionGroupFilter(admin.SimpleListFilter):
    title = "action group"
    parameter_name = "group"

    def lookups(self, request, model_admin):
        return list(GROUPS.items())

    def queryset(self, request, queryset):
        if self.value() in GROUPS:
            return queryset.filter(action__startswith=f"{self.value()}.")
        return queryset


class ActionFilter(admin.SimpleListFilter):
    """The known codes from the registry: no DISTINCT scan over the whole log to list them."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        return [(code, f"{code} · {label}") for code, label in ACTIONS.items()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(action=self.value())
        return queryset


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = [
        "at",
        "action",
        "actor_kind",
        "actor",
        "organization_label",
        "target",
        "ip",
    ]
    list_filter = [ActionGroupFilter, ActionFilter, "actor_kind", "at"]
    search_fields = ["actor_label", "organization_label", "target_label"]
    date_hierarchy = "at"
    ordering = ["-at", "-id"]
    list_per_page = 100
    show_full_result_count = False  # no COUNT(*) over the whole log on every page
    actions = None

    @admin.display(description="actor", ordering="actor_label")
    def actor(self, entry: AuditEntry) -> str:
        return entry.actor_display

    fields = readonly_fields = (
        "at",
        "action",
        "actor_kind",
        "actor_user",
        "actor_label",
        "actor_token_id",
        "organization",
        "organization_label",
        "target_type",
        "target_id",
        "target_label",
        "ip",
        "detail_pretty",
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="target")
    def target(self, entry: AuditEntry) -> str:
        if not entry.target_type:
            return "—"
        return f"{entry.target_label} ({entry.target_type} {entry.target_id})"

    @admin.display(description="detail")
    def detail_pretty(self, entry: AuditEntry) -> str:
        text = json.dumps(entry.detail, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html('<pre style="margin:0;white-space:pre-wrap">{}</pre>', text)
