from django.contrib import admin

from portal.sshkeys.models import SshKey


@admin.register(SshKey)
class SshKeyAdmin(admin.ModelAdmin):
    """Keys are added by customers (the service checks them); operators may rename or delete."""

    list_display = [
        "name",
        "organization",
        "owner",
        "key_type",
        "bits",
        "fingerprint",
        "created_at",
    ]
    list_filter = ["key_type", "created_at"]
    search_fields = [
        "name",
        "fingerprint",
        "organization__name",
        "organization__slug",
        "user__email",
    ]
    list_select_related = ["organization", "user"]
    readonly_fields = [
        "organization",
        "user",
        "public_key",
        "key_type",
        "bits",
        "fingerprint",
        "created_by",
        "created_at",
    ]
    fields = ["name", *readonly_fields]

    @admin.display(description="Owner", ordering="user__email")
    def owner(self, obj: SshKey) -> str:
        return "shared" if obj.user is None else obj.user.email

    def has_add_permission(self, request) -> bool:
        return False
