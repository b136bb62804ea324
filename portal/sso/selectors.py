"""Reads of single sign-on."""

from __future__ import annotations

from django.db.models import QuerySet

from portal.orgs.models import Organization
from portal.sso.models import ClaimState, DomainClaim, IdentityProvider


def identity_provider_get_for_organization(
    *, organization: Organization
) -> IdentityProvider | None:
    return (
        IdentityProvider.objects.select_related("app", "organization")
        .filter(organization=organization)
        .first()
    )


def identity_provider_get_by_provider_id(provider_id: str) -> IdentityProvider | None:
    return (
        IdentityProvider.objects.select_related("app", "organization")
        .filter(app__provider_id=provider_id)
        .first()
    )


def domain_claim_list_for_organization(*, organization: Organization) -> QuerySet[DomainClaim]:
    return organization.domain_claims.order_by("domain")


def domain_of(email: str) -> str:
    return (email or "").rpartition("@")[2].strip().lower()


def identity_provider_for_email(email: str) -> IdentityProvider | None:
    """The provider of the organization that owns the address's domain (a verified claim)."""
    domain = domain_of(email)
    if not domain:
        return None
    claim = (
        DomainClaim.objects.filter(domain=domain, state=ClaimState.VERIFIED)
        .select_related("organization")
        .first()
    )
    if claim is None:
        return None
    return identity_provider_get_for_organization(organization=claim.organization)


def verified_domains(*, organization: Organization) -> set[str]:
    return set(
        organization.domain_claims.filter(state=ClaimState.VERIFIED).values_list(
            "domain", flat=True
        )
    )


def identity_provider_required_for_user(user) -> IdentityProvider | None:
    """A provider that one of the user's organizations requires, or None."""
    if user is None or not getattr(user, "pk", None):
        return None
    return (
        IdentityProvider.objects.select_related("organization", "app")
        .filter(required=True, organization__memberships__user_id=user.pk)
        .order_by("organization__name")
        .first()
    )


def provider_for_login(*, email: str = "", user=None) -> IdentityProvider | None:
    """Where "Sign in with SSO" sends this person: their domain's provider, else that of an
    organization of theirs that requires SSO."""
    return identity_provider_for_email(email) or identity_provider_required_for_user(user)
