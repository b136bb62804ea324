"""Accepting an invitation at /invitations/<token>/ while signed in."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from portal.orgs.models import Membership
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def invitee(client_for):
    user = UserFactory(email="newcomer@example.com")
    client_for(user)
    return user


def is_member(user, team) -> bool:
    return Membership.objects.filter(user=user, organization=team.organization).exists()


def test_the_invited_user_sees_who_invites_them_and_to_which_role(client, invitee, invite):
    _, token = invite(role="billing")

    page = client.get(f"/invitations/{token}/").content.decode()

    assert "Join Acme AI" in page
    assert "to join as <strong>billing</strong>" in page


def test_accepting_makes_the_invited_user_a_member_with_the_role(client, team, invitee, invite):
    _, token = invite(role="billing")

    response = client.post(f"/invitations/{token}/", follow=True)

    assert response.redirect_chain[-1][0] == "/o/acme/"
    assert "Welcome to Acme AI. Your role is Billing." in response.content.decode()
    assert Membership.objects.get(user=invitee, organization=team.organization).role == "billing"


def test_a_used_link_is_refused(client, team, invitee, invite):
    _, token = invite()
    client.post(f"/invitations/{token}/")

    response = client.post(f"/invitations/{token}/")

    assert response.status_code == 410
    assert "This invitation has already been used." in response.content.decode()
    assert Membership.objects.filter(user=invitee).count() == 1


def test_an_expired_link_is_refused(client, team, invitee, invite):
    invitation, token = invite()
    invitation.expires_at = timezone.now() - timedelta(minutes=1)
    invitation.save()

    response = client.post(f"/invitations/{token}/")

    assert response.status_code == 410
    assert "This invitation has expired. Ask for a new invitation." in response.content.decode()
    assert not is_member(invitee, team)


def test_a_revoked_link_is_refused(client, team, invitee, invite):
    invitation, token = invite()
    invitation.revoked_at = timezone.now()
    invitation.save()

    response = client.post(f"/invitations/{token}/")

    assert response.status_code == 410
    assert "This invitation was withdrawn." in response.content.decode()
    assert not is_member(invitee, team)


def test_a_made_up_link_is_refused(client, invitee):
    response = client.get("/invitations/made-up-token/")

    assert response.status_code == 410
    assert "This invitation link is not valid." in response.content.decode()


def test_someone_signed_in_with_another_address_cannot_accept(client_for, team, invite):
    _, token = invite(email="newcomer@example.com")
    someone_else = UserFactory(email="someone@example.com")

    response = client_for(someone_else).post(f"/invitations/{token}/")

    assert response.status_code == 400
    assert (
        "This invitation was sent to newcomer@example.com, but you are signed in as "
        "someone@example.com." in response.content.decode()
    )
    assert not is_member(someone_else, team)


def test_the_inviter_is_told_when_the_invitation_is_accepted(
    client, team, invitee, invite, django_capture_on_commit_callbacks
):
    invitee.full_name = "Grace O'Hara"
    invitee.save()
    _, token = invite(role="billing", by=team.admin)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/invitations/{token}/")

    (message,) = mail.outbox
    assert message.to == [team.admin.user.email]
    assert message.subject == "[Backfill] Grace O'Hara joined Acme AI"
    assert (
        "Grace O'Hara (newcomer@example.com) accepted your invitation and joined Acme AI on "
        "Backfill as billing." in message.body
    )
    assert "http://testserver/o/acme/members/" in message.body
    assert "See the members" in message.alternatives[0][0]
