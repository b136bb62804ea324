from django.contrib import admin

from portal.accounts.admin import UserAdmin
from portal.orgs.models import Invitation, Membership, Organization


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at"]


class UserMembershipInline(admin.TabularInline):
    """A user's organizations, on the user's admin page (accounts knows nothing of orgs)."""

    model = Membership
    fk_name = "user"
    extra = 0
    autocomplete_fields = ["organization"]
    readonly_fields = ["created_at"]


UserAdmin.inlines = [*UserAdmin.inlines, UserMembershipInline]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "member_count", "created_at", "created_by"]
    search_fields = ["name", "slug", "memberships__user__email"]
    list_filter = ["created_at"]
    readonly_fields = ["created_at"]
    autocomplete_fields = ["created_by"]
    inlines = [MembershipInline]

    @admin.display(description="Members")
    def member_count(self, obj: Organization) -> int:
        return obj.memberships.count()

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("created_by")
            .prefetch_related("memberships")
        )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "created_at"]
    search_fields = ["user__email", "organization__name", "organization__slug"]
    autocomplete_fields = ["user", "organization"]
    list_select_related = ["user", "organization"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "organization", "role", "status", "invited_by", "created_at"]
    list_filter = ["role", "created_at", "accepted_at", "revoked_at"]
    search_fields = ["email", "organization__name"]
    list_select_related = ["organization", "invited_by"]
    readonly_fields = ["token_hash", "created_at", "accepted_at", "accepted_by"]
    autocomplete_fields = ["organization", "invited_by"]
