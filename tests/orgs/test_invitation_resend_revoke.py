"""Resending and revoking open invitations from the members page."""

import pytest
from django.core import mail

from portal.orgs.models import Invitation
from tests.accounts.helpers import link_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def pending(invite):
    """An open invitation and the token of its link."""
    return invite(email="newcomer@example.com", role="viewer")


def test_resending_mails_a_new_link_and_the_old_one_stops_working(
    team, client_for, pending, client, django_capture_on_commit_callbacks
):
    invitation, old_token = pending
    client_for(team.admin.user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/o/acme/invitations/{invitation.pk}/resend/", follow=True)

    assert "Invitation sent again to newcomer@example.com." in response.content.decode()
    [message] = mail.outbox
    assert message.to == ["newcomer@example.com"]
    assert client.get(link_in(message, "/invitations/")).status_code == 200
    assert client.get(f"/invitations/{old_token}/").status_code == 410


def test_revoking_withdraws_the_link(team, client_for, pending, client):
    invitation, token = pending
    client_for(team.owner.user)

    response = client.post(f"/o/acme/invitations/{invitation.pk}/revoke/", follow=True)

    assert "Invitation to newcomer@example.com revoked." in response.content.decode()
    assert "This invitation was withdrawn." in client.get(f"/invitations/{token}/").content.decode()


def test_a_revoked_invitation_cannot_be_resent(team, client_for, pending, client):
    invitation, _ = pending
    client_for(team.owner.user).post(f"/o/acme/invitations/{invitation.pk}/revoke/")

    response = client.post(f"/o/acme/invitations/{invitation.pk}/resend/", follow=True)

    assert "This invitation is no longer open." in response.content.decode()
    assert mail.outbox == []


def test_after_revoking_the_address_can_be_invited_again(team, client_for, pending, invite):
    invitation, _ = pending
    client_for(team.owner.user).post(f"/o/acme/invitations/{invitation.pk}/revoke/")

    invite(email="newcomer@example.com", role="admin")

    assert Invitation.objects.pending().get().role == "admin"


@pytest.mark.parametrize("action", ["resend", "revoke"])
@pytest.mark.parametrize("role", ["member", "billing"])
def test_only_owners_and_admins_resend_or_revoke(team, client_for, pending, action, role):
    invitation, token = pending

    response = client_for(team.by_role(role).user).post(
        f"/o/acme/invitations/{invitation.pk}/{action}/"
    )

    assert response.status_code == 403
    invitation.refresh_from_db()
    assert invitation.status == "pending"
    assert mail.outbox == []
