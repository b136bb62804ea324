from django.contrib import admin

from portal.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Read-only for operators: customers manage their endpoints; the secret stays hidden."""

    list_display = ["url", "organization", "active", "created_at"]
    list_filter = ["active"]
    search_fields = ["url", "organization__name", "organization__slug"]
    list_select_related = ["organization"]
    fields = readonly_fields = (
        "organization",
        "url",
        "description",
        "event_types",
        "secret_hint",
        "active",
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = readonly_fields = ("number", "at", "status_code", "duration_ms", "error")
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["event_type", "endpoint", "state", "attempts", "created_at"]
    list_filter = ["state", "event_type"]
    search_fields = ["endpoint__url", "endpoint__organization__slug", "event_id"]
    list_select_related = ["endpoint"]
    fields = readonly_fields = (
        "endpoint",
        "event_id",
        "event_type",
        "body",
        "state",
        "attempts",
        "created_at",
        "last_attempt_at",
        "next_attempt_at",
        "delivered_at",
    )
    inlines = [WebhookAttemptInline]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
