from django.contrib import admin

from portal.api.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Operators see tokens (never their secrets) and can tell who owns which; customers
    create and revoke them on the API page."""

    list_display = [
        "name",
        "display_prefix",
        "organization",
        "user",
        "scope",
        "status",
        "last_used_at",
    ]
    list_filter = ["scope", "created_at"]
    search_fields = ["name", "prefix", "organization__slug", "user__email"]
    list_select_related = ["organization", "user"]
    fields = readonly_fields = (
        "organization",
        "user",
        "name",
        "prefix",
        "scope",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
        "created_at",
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
