"""One function per e-mail that Backfill sends (allauth sends its own account e-mails)."""

from django.urls import reverse

from portal.notifications.mail import send_templated
from portal.orgs.models import Invitation


def send_invitation(*, invitation: Invitation, token: str) -> None:
    from django.conf import settings

    send_templated(
        template="invitation",
        to=[invitation.email],
        context={
            "invitation": invitation,
            "organization": invitation.organization,
            "inviter": invitation.invited_by,
            "accept_url": settings.SITE_URL + reverse("orgs:invitation_accept", args=[token]),
        },
    )
