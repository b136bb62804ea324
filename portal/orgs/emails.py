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
