"""Inviting someone by e-mail with a role, from the members page."""

import pytest
from django.core import mail

from portal.orgs.models import Invitation
from tests.accounts.helpers import link_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def send_invitation(team, client_for, django_capture_on_commit_callbacks):
    """POST the invite form as the member with `role`; the mail goes out on commit."""

    def post(email: str = "newcomer@example.com", role: str = "member", *, by: str = "owner"):
        client = client_for(team.by_role(by).user)
        with django_capture_on_commit_callbacks(execute=True):
            return client.post("/o/acme/members/invite/", {"email": email, "role": role})

    return post


def test_the_invitation_mail_goes_to_that_address_and_says_the_role(send_invitation):
    response = send_invitation("newcomer@example.com", "billing")

    assert response["Location"] == "/o/acme/members/"
    [message] = mail.outbox
    assert message.to == ["newcomer@example.com"]
    assert "to join Acme AI on Backfill as billing" in message.body
    assert Invitation.objects.get().role == "billing"


def test_the_link_in_the_mail_opens_the_invitation(send_invitation, client):
    send_invitation("newcomer@example.com", "viewer")
    link = link_in(mail.outbox[0], "/invitations/")
    client.logout()

    page = client.get(link).content.decode()

    assert "Join Acme AI" in page
    assert "newcomer@example.com" in page


def test_an_admin_can_invite_too(send_invitation):
    send_invitation(role="admin", by="admin")

    assert Invitation.objects.get().role == "admin"
    assert len(mail.outbox) == 1


@pytest.mark.parametrize("role", ["member", "billing", "viewer"])
def test_other_roles_may_not_invite(send_invitation, role):
    response = send_invitation(by=role)

    assert response.status_code == 403
    assert not Invitation.objects.exists()
    assert mail.outbox == []


def test_an_admin_cannot_invite_an_owner(send_invitation):
    response = send_invitation(role="owner", by="admin")

    assert response.status_code == 400
    assert "Select a valid choice." in response.content.decode()
    assert not Invitation.objects.exists()
    assert mail.outbox == []


def test_someone_already_in_the_organization_is_not_invited_again(send_invitation, team):
    response = send_invitation(team.viewer.user.email.upper())

    assert f"{team.viewer.user.email} is already a member of Acme AI." in (
        response.content.decode()
    )
    assert not Invitation.objects.exists()
    assert mail.outbox == []


def test_a_second_invitation_to_the_same_address_is_refused(send_invitation):
    send_invitation("newcomer@example.com")
    mail.outbox.clear()

    response = send_invitation("newcomer@example.com", "admin")

    assert response.status_code == 400
    assert "newcomer@example.com has already been invited." in response.content.decode()
    assert Invitation.objects.get().role == "member"
    assert mail.outbox == []
