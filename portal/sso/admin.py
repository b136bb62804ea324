"""Staff decide domain claims here (and see each organization's identity provider)."""

from django.contrib import admin, messages
from django.utils.html import format_html

from portal.lib.errors import ApplicationError
from portal.sso.models import ClaimState, DomainClaim, IdentityProvider
from portal.sso.services import domain_claim_reject, domain_claim_verify


@admin.register(DomainClaim)
class DomainClaimAdmin(admin.ModelAdmin):
    list_display = ["domain", "organization", "state", "claimed_at", "claimed_by", "dns_record"]
    list_filter = ["state"]
    search_fields = ["domain", "organization__name", "organization__slug"]
    readonly_fields = [
        "organization",
        "domain",
        "state",
        "verification_token",
        "dns_record",
        "claimed_at",
        "claimed_by",
        "decided_at",
        "decided_by",
    ]
    fields = [*readonly_fields, "note"]
    actions = ["verify", "reject"]

    def has_add_permission(self, request) -> bool:
        return False  # owners claim on their SSO page

    @admin.display(description="DNS proof (TXT record)")
    def dns_record(self, claim: DomainClaim) -> str:
        return format_html("<code>{}</code> = <code>{}</code>", claim.dns_name, claim.dns_value)

    @admin.action(description="Verify the selected domain claims")
    def verify(self, request, queryset) -> None:
        done = 0
        for claim in queryset.filter(state=ClaimState.PENDING):
            try:
                domain_claim_verify(claim=claim, by=request.user)
            except ApplicationError as error:
                self.message_user(request, f"{claim.domain}: {error.message}", messages.ERROR)
            else:
                done += 1
        self.message_user(request, f"Verified {done} domain claim(s).", messages.SUCCESS)

    @admin.action(description="Reject the selected domain claims")
    def reject(self, request, queryset) -> None:
        done = 0
        for claim in queryset.exclude(state=ClaimState.REJECTED):
            domain_claim_reject(claim=claim, by=request.user, note="Rejected by the operator.")
            done += 1
        self.message_user(request, f"Rejected {done} domain claim(s).", messages.SUCCESS)


@admin.register(IdentityProvider)
class IdentityProviderAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "issuer", "default_role", "required", "updated_at"]
    search_fields = ["name", "issuer", "organization__name"]
    readonly_fields = [
        "organization",
        "app",
        "name",
        "issuer",
        "default_role",
        "required",
        "created_at",
        "created_by",
        "updated_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False
