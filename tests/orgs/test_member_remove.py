"""Owners remove members, after a confirmation page."""

import pytest

from portal.orgs.models import Membership

pytestmark = pytest.mark.django_db


def still_there(membership) -> bool:
    return Membership.objects.filter(pk=membership.pk).exists()


def test_an_owner_is_asked_to_confirm_before_removing(team, client_for):
    response = client_for(team.owner.user).get(f"/o/acme/members/{team.member.pk}/remove/")

    assert f"Remove {team.member.user.email}?" in response.content.decode()
    assert still_there(team.member)


def test_an_owner_removes_a_member_who_then_loses_access(team, client_for):
    client = client_for(team.owner.user)

    response = client.post(f"/o/acme/members/{team.member.pk}/remove/", follow=True)

    assert f"{team.member.user.email} was removed from Acme AI." in response.content.decode()
    assert not still_there(team.member)
    assert client_for(team.member.user).get("/o/acme/").status_code == 404


@pytest.mark.parametrize("role", ["admin", "member"])
def test_admins_and_members_cannot_remove_anyone(team, client_for, role):
    response = client_for(team.by_role(role).user).post(f"/o/acme/members/{team.viewer.pk}/remove/")

    assert response.status_code == 403
    assert still_there(team.viewer)


def test_the_last_owner_cannot_be_removed(team, client_for):
    client = client_for(team.owner.user)

    response = client.post(f"/o/acme/members/{team.owner.pk}/remove/", follow=True)

    assert "You are the last owner." in response.content.decode()
    assert still_there(team.owner)


def test_a_membership_of_another_organization_is_not_found(team, client_for, outsider):
    response = client_for(team.owner.user).post(f"/o/acme/members/{outsider.pk}/remove/")

    assert response.status_code == 404
    assert still_there(outsider)
