"""Owners change members' roles from the members page."""

import pytest

pytestmark = pytest.mark.django_db


def role_of(membership) -> str:
    membership.refresh_from_db()
    return membership.role


def test_an_owner_changes_a_members_role(team, client_for):
    client = client_for(team.owner.user)

    response = client.post(
        f"/o/acme/members/{team.member.pk}/role/", {"role": "admin"}, follow=True
    )

    assert f"{team.member.user.email} is now Admin." in response.content.decode()
    assert role_of(team.member) == "admin"


@pytest.mark.parametrize("role", ["admin", "member"])
def test_admins_and_members_cannot_change_roles(team, client_for, role):
    client = client_for(team.by_role(role).user)

    response = client.post(f"/o/acme/members/{team.viewer.pk}/role/", {"role": "owner"})

    assert response.status_code == 403
    assert role_of(team.viewer) == "viewer"


def test_the_last_owner_cannot_be_demoted(team, client_for):
    client = client_for(team.owner.user)

    response = client.post(f"/o/acme/members/{team.owner.pk}/role/", {"role": "admin"}, follow=True)

    assert "This is the last owner. Make someone else an owner first." in (
        response.content.decode()
    )
    assert role_of(team.owner) == "owner"


def test_an_owner_can_be_demoted_once_there_is_another_owner(team, client_for):
    client = client_for(team.owner.user)
    client.post(f"/o/acme/members/{team.admin.pk}/role/", {"role": "owner"})

    client.post(f"/o/acme/members/{team.owner.pk}/role/", {"role": "member"})

    assert (role_of(team.admin), role_of(team.owner)) == ("owner", "member")


def test_a_role_that_does_not_exist_is_refused(team, client_for):
    client = client_for(team.owner.user)

    response = client.post(f"/o/acme/members/{team.member.pk}/role/", {"role": "god"}, follow=True)

    assert "Choose one of the listed roles." in response.content.decode()
    assert role_of(team.member) == "member"


def test_a_membership_of_another_organization_is_not_found(team, client_for, outsider):
    client = client_for(team.owner.user)

    response = client.post(f"/o/acme/members/{outsider.pk}/role/", {"role": "viewer"})

    assert response.status_code == 404
    assert role_of(outsider) == "owner"
