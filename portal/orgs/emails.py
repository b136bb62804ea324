"""The e-mails of organizations, one builder per kind (see portal.notifications.registry)."""

from django.conf import settings
from django.urls import reverse

from portal.notifications.registry import Email, email_kind
from portal.orgs.models import Invitation, Suspension
from portal.orgs.selectors import organization_owner_emails


def _url(name: str, *args) -> str:
    return settings.SITE_URL + reverse(name, args=args)


@email_kind("invitation", secret_params=("token",))
def invitation(*, invitation_id: int, token: str) -> list[Email]:
    """To the invited address, with the link that carries the token (kept only until sent)."""
    invited = Invitation.objects.select_related("organization", "invited_by").get(pk=invitation_id)
    return [
        Email(
            template="invitation",
            to=[invited.email],
            context={
                "invitation": invited,
                "organization": invited.organization,
                "inviter": invited.invited_by,
                "accept_url": _url("orgs:invitation_accept", token),
            },
        )
    ]


def _suspension(template: str, suspension_id: int) -> list[Email]:
    suspension = Suspension.objects.select_related("organization").get(pk=suspension_id)
    organization = suspension.organization
    return [
        Email(
            template=template,
            to=organization_owner_emails(organization=organization),
            context={
                "organization": organization,
                "suspension": suspension,
                "operator_email": settings.OPERATOR_EMAIL,
                "url": _url("dashboard_org", organization.slug),
            },
        )
    ]


@email_kind("organization_suspended")
def organization_suspended(*, suspension_id: int) -> list[Email]:
    return _suspension("organization_suspended", suspension_id)


@email_kind("organization_unsuspended")
def organization_unsuspended(*, suspension_id: int) -> list[Email]:
    return _suspension("organization_unsuspended", suspension_id)


@email_kind("invitation_accepted")
def invitation_accepted(*, invitation_id: int) -> list[Email]:
    """To whoever sent the invitation: the person joined, with the role they have now."""
    invited = Invitation.objects.select_related("organization", "invited_by", "accepted_by").get(
        pk=invitation_id
    )
    inviter = invited.invited_by
    if inviter is None or not inviter.is_active or invited.accepted_by is None:
        return []
    organization = invited.organization
    membership = organization.memberships.filter(user=invited.accepted_by).first()
    return [
        Email(
            template="invitation_accepted",
            to=[inviter.email],
            context={
                "organization": organization,
                "invitation": invited,
                "person": invited.accepted_by,
                "membership": membership,
                "members_url": _url("orgs:members", organization.slug),
            },
        )
    ]
