"""Where two-factor is required: staff (for the admin) and members of an organization whose
owner requires it. allauth's authenticators (an authenticator app or a passkey) count."""

from __future__ import annotations

from datetime import datetime

from allauth.mfa.models import Authenticator
from django.db.models import Min

from portal.orgs.models import Organization

# Recovery codes come with one of these; alone they are not a second factor.
SECOND_FACTORS = (Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN)


def two_factor_since(user) -> datetime | None:
    """When the user first had the second factor they have now (None: none)."""
    return Authenticator.objects.filter(user=user, type__in=SECOND_FACTORS).aggregate(
        first=Min("created_at")
    )["first"]


def user_has_two_factor(user) -> bool:
    return Authenticator.objects.filter(user=user, type__in=SECOND_FACTORS).exists()


def organization_requiring_two_factor(user):
    """The first organization of the user that requires two-factor, if they lack it (else None)."""
    organization = (
        Organization.objects.filter(require_two_factor=True, memberships__user=user)
        .order_by("name")
        .first()
    )  # one small query per page; the second only where an organization requires it
    if organization is None or user_has_two_factor(user):
        return None
    return organization
