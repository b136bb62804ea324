"""The members page: who is in the organization and who has been invited."""

import pytest

pytestmark = pytest.mark.django_db


def test_every_member_sees_everyone_in_the_organization(team, client_for):
    page = client_for(team.viewer.user).get("/o/acme/members/").content.decode()

    for role in ["owner", "admin", "member", "billing", "viewer"]:
        assert team.by_role(role).user.email in page


def test_open_invitations_are_listed(team, client_for, invite):
    invite(email="newcomer@example.com")

    page = client_for(team.member.user).get("/o/acme/members/").content.decode()

    assert "newcomer@example.com" in page


@pytest.mark.parametrize(("role", "can_invite"), [("admin", True), ("viewer", False)])
def test_only_those_who_may_invite_see_the_invite_form(team, client_for, role, can_invite):
    page = client_for(team.by_role(role).user).get("/o/acme/members/").content.decode()

    assert ("Send invitation" in page) is can_invite
