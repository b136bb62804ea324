"""Single sign-on per organization: its OpenID Connect identity provider and its e-mail domains.

An owner adds the organization's identity provider (issuer, client id, secret): it is kept as
an allauth SocialApp of the "openid_connect" provider, one per organization (its provider_id
is `org-<slug>`), which does the OAuth2/OIDC work. The owner claims the e-mail domains of the
organization; staff confirm a claim in the admin (with DNS proof where the operator adds it;
see the README), and only then may people of that domain sign in through the provider, and
join the organization with its default role. An owner may then require SSO of every member:
password sign-in is refused for them.
"""

import secrets

from allauth.socialaccount.models import SocialApp
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from portal.orgs.roles import Role

DOMAIN_MAX_LENGTH = 253
# Roles someone may get by signing in through SSO: never owner.
JOIN_ROLES = [(role.value, role.label) for role in Role if role != Role.OWNER]


def provider_id_for(organization) -> str:
    """allauth's provider_id of the organization's app (in its callback URL)."""
    return f"org-{organization.slug}"


class IdentityProvider(models.Model):
    organization = models.OneToOneField(
        "orgs.Organization", on_delete=models.CASCADE, related_name="identity_provider"
    )
    app = models.OneToOneField(SocialApp, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=80, help_text="What people see: “Sign in with …”.")
    issuer = models.URLField(max_length=300)
    # From the discovery document: where "Sign in with SSO" sends people (the page that sends
    # them there allows a form to go to its origin; see portal/sso/views.py).
    authorization_endpoint = models.URLField(max_length=500)
    default_role = models.CharField(max_length=16, choices=JOIN_ROLES, default=Role.MEMBER)
    required = models.BooleanField(
        default=False, help_text="Members may sign in only through this provider."
    )
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "identity provider"

    def __str__(self) -> str:
        return f"{self.name} ({self.organization})"

    @property
    def provider_id(self) -> str:
        return self.app.provider_id


class ClaimState(models.TextChoices):
    PENDING = "pending", "Waiting for the operator"
    VERIFIED = "verified", "Verified"
    REJECTED = "rejected", "Rejected"


def new_verification_token() -> str:
    return secrets.token_hex(16)


class DomainClaim(models.Model):
    """An organization says an e-mail domain is its own. Until staff verify it, nothing
    follows from it; a domain is claimed by one organization at a time (pending or verified)."""

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="domain_claims"
    )
    domain = models.CharField(max_length=DOMAIN_MAX_LENGTH)
    state = models.CharField(max_length=16, choices=ClaimState.choices, default=ClaimState.PENDING)
    verification_token = models.CharField(max_length=64, default=new_verification_token)
    claimed_at = models.DateTimeField(default=timezone.now)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=500, blank=True, help_text="Why it was rejected.")

    class Meta:
        ordering = ["domain"]
        constraints = [
            models.UniqueConstraint(
                fields=["domain"],
                condition=~Q(state="rejected"),
                name="one_live_claim_per_domain",
            )
        ]

    def __str__(self) -> str:
        return f"{self.domain} ({self.get_state_display().lower()}) for {self.organization}"

    @property
    def dns_name(self) -> str:
        return f"_backfill-verification.{self.domain}"

    @property
    def dns_value(self) -> str:
        return f"backfill-domain-verification={self.verification_token}"
