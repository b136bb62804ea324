"""Renaming an organization on its settings page, /o/<slug>/settings/."""

import pytest

pytestmark = pytest.mark.django_db


def name_of(team) -> str:
    team.organization.refresh_from_db()
    return team.organization.name


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owners_and_admins_rename_the_organization(team, client_for, role):
    client = client_for(team.by_role(role).user)

    response = client.post("/o/acme/settings/", {"name": "Acme Robotics"}, follow=True)

    assert "Organization renamed." in response.content.decode()
    assert name_of(team) == "Acme Robotics"


@pytest.mark.parametrize("role", ["member", "billing", "viewer"])
def test_other_roles_cannot_rename_and_nothing_changes(team, client_for, role):
    client = client_for(team.by_role(role).user)

    response = client.post("/o/acme/settings/", {"name": "Hijacked"}, follow=True)

    assert "Only owners and admins can rename the organization." in response.content.decode()
    assert name_of(team) == "Acme AI"


@pytest.mark.parametrize("name", ["", "x" * 500], ids=["empty", "500 characters"])
def test_an_unusable_new_name_is_refused(team, client_for, name):
    response = client_for(team.owner.user).post("/o/acme/settings/", {"name": name})

    assert response.status_code == 200
    assert 'class="errorlist' in response.content.decode()
    assert name_of(team) == "Acme AI"


def test_every_member_can_read_the_settings_page(team, client_for):
    response = client_for(team.viewer.user).get("/o/acme/settings/")

    assert response.status_code == 200
    assert "Acme AI" in response.content.decode()
