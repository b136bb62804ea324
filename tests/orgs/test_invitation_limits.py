"""Invitations and resends are rate-limited per organization and per person; the mail to
someone who is not a member yet carries no attacker-chosen name in its subject."""

import pytest
from django.core import mail
from django.test import Client

from portal.api.models import Scope
from portal.api.services import api_token_create
from portal.lib.errors import ApplicationError
from portal.notifications.models import Notification
from portal.orgs.models import Invitation
from portal.orgs.services import invitation_create, invitation_resend
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def limits(settings):
    settings.INVITATIONS_PER_ORGANIZATION_PER_HOUR = 5
    settings.INVITATIONS_PER_USER_PER_HOUR = 3
    return settings


def invite(actor, n: int):
    return invitation_create(actor=actor, email=f"invitee{n}@example.net", role="member")


def test_one_person_may_send_only_so_many_invitations_an_hour(team, limits):
    for n in range(3):
        invite(team.owner, n)
    sent = Notification.objects.count()

    with pytest.raises(ApplicationError) as refused:
        invite(team.owner, 99)

    assert refused.value.code == "rate_limited"
    assert "at most 3 invitations an hour" in refused.value.message
    assert not Invitation.objects.filter(email="invitee99@example.net").exists()
    assert Notification.objects.count() == sent  # nothing sent


def test_resends_count_too(team, limits):
    invitation, _ = invite(team.owner, 0)
    invitation_resend(actor=team.owner, invitation=invitation)
    invitation_resend(actor=team.owner, invitation=invitation)

    with pytest.raises(ApplicationError, match="invitations an hour"):
        invitation_resend(actor=team.owner, invitation=invitation)


def test_an_organization_may_send_only_so_many_whoever_sends_them(team, limits):
    for n in range(3):
        invite(team.owner, n)
    for n in range(3, 5):
        invite(team.admin, n)

    with pytest.raises(ApplicationError) as refused:
        invite(team.admin, 99)

    assert refused.value.code == "rate_limited"
    assert "Acme AI has sent 5 invitations in the last hour" in refused.value.message
    # Another organization is not held up by this one.
    other = MembershipFactory(role="owner")
    invite(other, 100)


def test_the_page_says_so_and_the_api_answers_429(team, limits, client_for):
    for n in range(3):
        invite(team.owner, n)

    page = client_for(team.owner.user).post(
        "/o/acme/members/invite/", {"email": "late@example.com", "role": "member"}
    )
    assert page.status_code == 400
    assert "at most 3 invitations an hour" in page.content.decode()
    _token, value = api_token_create(membership=team.owner, name="t", scope=Scope.READ_WRITE)
    response = Client().post(
        "/api/v1/invitations/",
        {"email": "l@example.com", "role": "member"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {value}"},
    )
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "rate_limited"
    assert 3500 < int(response["Retry-After"]) <= 3601  # when the first of the hour leaves


def test_the_subject_of_an_invitation_names_no_organization_or_inviter(
    team, django_capture_on_commit_callbacks
):
    team.organization.name = "Click http://evil.example to claim $500"
    team.organization.save(update_fields=["name"])
    team.owner.user.full_name = "Support Desk: verify your card"
    team.owner.user.save(update_fields=["full_name"])

    with django_capture_on_commit_callbacks(execute=True):
        invite(team.owner, 1)

    [message] = mail.outbox
    assert "evil" not in message.subject and "claim" not in message.subject
    assert "Support Desk" not in message.subject
    assert message.subject == "[Backfill] You are invited to join an organization on Backfill"
