"""Reads for organizations, scoped to what the requesting user may see."""

from collections.abc import Iterable

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from portal.accounts.models import User
from portal.orgs.models import (
    Invitation,
    Membership,
    Organization,
    Suspension,
    invitation_token_hash,
)
from portal.orgs.roles import Role


def membership_among(
    memberships: Iterable[Membership], *, slug: str, user: User, permission: str = "org.view"
) -> Membership:
    """The user's membership in the organization with this slug, among their `memberships`
    (all of them, read once: the layout lists them too).

    Outsiders get a 404 so that another organization's existence is never revealed;
    members whose role lacks the permission get a 403.
    """
    membership = next((m for m in memberships if m.organization.slug == slug), None)
    if membership is None:
        raise Http404("No such organization")
    if not membership.can(permission):
        raise PermissionDenied("Your role in this organization does not allow this.")
    membership.user = user  # the one signed in: no query for it
    return membership


def membership_list_for_user(*, user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("organization")


def membership_list_for_organization(*, organization: Organization) -> QuerySet[Membership]:
    return organization.memberships.select_related("user").order_by("user__email")


def invitation_list_open_for_organization(*, organization: Organization) -> QuerySet[Invitation]:
    return organization.invitations.filter(
        accepted_at__isnull=True, revoked_at__isnull=True
    ).select_related("invited_by")


def membership_get_for_organization(*, organization: Organization, pk: int) -> Membership:
    membership = organization.memberships.select_related("user").filter(pk=pk).first()
    if membership is None:
        raise Http404
    return membership


def invitation_get_for_organization(*, organization: Organization, pk: int) -> Invitation:
    invitation = organization.invitations.filter(pk=pk).first()
    if invitation is None:
        raise Http404
    return invitation


def invitation_get_by_token(*, token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("organization", "invited_by")
        .filter(token_hash=invitation_token_hash(token))
        .first()
    )


def organization_owner_emails(*, organization: Organization) -> list[str]:
    return sorted(
        set(organization.memberships.filter(role=Role.OWNER).values_list("user__email", flat=True))
    )


def organization_manager_emails(*, organization: Organization) -> list[str]:
    """Owners and admins: who answers for the organization's quotas and reservations."""
    return sorted(
        set(
            organization.memberships.filter(role__in=[Role.OWNER, Role.ADMIN]).values_list(
                "user__email", flat=True
            )
        )
    )


# --- Suspensions ------------------------------------------------------------------------------


def organization_suspension(organization: Organization | int) -> Suspension | None:
    org_id = organization if isinstance(organization, int) else organization.pk
    return Suspension.objects.filter(organization_id=org_id, lifted_at__isnull=True).first()


def organization_suspension_reason(organization: Organization | int) -> str | None:
    """Why the organization may not launch or use the API now, for its members; None if it may."""
    suspension = organization_suspension(organization)
    if suspension is None:
        return None
    return f"This organization is suspended by the operator: {suspension.reason}"
