"""Leaving an organization at /o/<slug>/leave/."""

import pytest

from portal.orgs.models import Membership

pytestmark = pytest.mark.django_db


def test_a_member_leaves_and_is_sent_to_the_dashboard(team, client_for):
    client = client_for(team.member.user)

    response = client.post("/o/acme/leave/", follow=True)

    assert response.redirect_chain[0][0] == "/dashboard/"
    assert "You left Acme AI." in response.content.decode()
    assert not Membership.objects.filter(pk=team.member.pk).exists()


def test_leaving_asks_for_confirmation_first(team, client_for):
    response = client_for(team.member.user).get("/o/acme/leave/")

    assert "Leave Acme AI?" in response.content.decode()
    assert Membership.objects.filter(pk=team.member.pk).exists()


def test_the_last_owner_cannot_leave(team, client_for):
    response = client_for(team.owner.user).post("/o/acme/leave/", follow=True)

    assert "You are the last owner. Make someone else an owner before you leave." in (
        response.content.decode()
    )
    assert Membership.objects.filter(pk=team.owner.pk).exists()


def test_an_owner_can_leave_when_another_owner_remains(team, client_for):
    team.admin.role = "owner"
    team.admin.save()

    client_for(team.owner.user).post("/o/acme/leave/")

    assert not Membership.objects.filter(pk=team.owner.pk).exists()
