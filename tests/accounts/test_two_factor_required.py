"""Two-factor where it is required: staff for /admin/, and every member of an organization
whose owner requires it (sent to set it up before anything else); API tokens made before their
user turned two-factor on stop working in such an organization."""

from datetime import timedelta

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.api.models import Scope
from portal.api.services import api_token_create
from portal.audit.models import AuditEntry
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SETUP = "/accounts/2fa/"


def turn_on_totp(user):
    TOTP.activate(user, generate_totp_secret())


def require(organization, value=True):
    organization.require_two_factor = value
    organization.save(update_fields=["require_two_factor"])


def test_staff_without_two_factor_are_sent_to_set_it_up_from_the_admin(client):
    staff = UserFactory(is_staff=True, is_superuser=True, two_factor=False)
    client.force_login(staff)

    response = client.get("/admin/")

    assert response.status_code == 302 and response["Location"].startswith(SETUP)
    assert client.get("/admin/overview/")["Location"].startswith(SETUP)
    assert client.get(SETUP).status_code == 200  # the way out is open


def test_staff_with_two_factor_use_the_admin(client):
    staff = UserFactory(is_staff=True, is_superuser=True, two_factor=False)
    turn_on_totp(staff)
    client.force_login(staff)

    assert client.get("/admin/").status_code == 200


def test_an_admin_page_asks_once_whether_staff_have_two_factor(team, client):
    staff = UserFactory(is_staff=True, is_superuser=True, two_factor=False)
    turn_on_totp(staff)
    team.organization.memberships.create(user=staff, role="member")
    require(team.organization)  # staff with two-factor meet it: nothing more to look up
    client.force_login(staff)
    client.get("/admin/")  # the session, the user and the app list, read once

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/admin/")

    assert response.status_code == 200
    sql = [query["sql"] for query in queries.captured_queries]
    assert sum('FROM "mfa_authenticator"' in statement for statement in sql) == 1
    wheres = [statement.split(" WHERE ", 1)[1] for statement in sql if " WHERE " in statement]
    assert not any("require_two_factor" in where for where in wheres)


def test_staff_without_two_factor_are_held_where_their_organization_requires_it(team, client):
    staff = UserFactory(is_staff=True, is_superuser=True, two_factor=False)
    team.organization.memberships.create(user=staff, role="member")
    require(team.organization)
    client.force_login(staff)

    for url in ("/admin/", "/o/acme/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(SETUP), url


def test_an_owner_with_two_factor_requires_it_of_every_member(team, client_for):
    turn_on_totp(team.owner.user)
    client = client_for(team.owner.user)

    response = client.post("/o/acme/settings/two-factor/", {"require": "on"})

    assert response.status_code == 302
    team.organization.refresh_from_db()
    assert team.organization.require_two_factor
    assert AuditEntry.objects.filter(action="org.two_factor_required").exists()
    assert "Two-factor is required" in client.get("/o/acme/settings/").content.decode()


def test_an_owner_without_two_factor_is_told_to_turn_it_on_first(team, client_for):
    response = client_for(team.owner.user).post("/o/acme/settings/two-factor/", {"require": "on"})

    assert response.status_code == 302
    team.organization.refresh_from_db()
    assert not team.organization.require_two_factor


@pytest.mark.parametrize("role", ["admin", "member", "viewer", "billing"])
def test_only_owners_change_the_requirement(team, client_for, role):
    response = client_for(team.by_role(role).user).post(
        "/o/acme/settings/two-factor/", {"require": "on"}
    )

    assert response.status_code == 403
    team.organization.refresh_from_db()
    assert not team.organization.require_two_factor


def test_a_member_without_two_factor_is_sent_to_set_it_up_before_anything_else(team, client_for):
    require(team.organization)
    client = client_for(team.member.user)

    for url in ("/o/acme/", "/o/acme/instances/", "/dashboard/", "/o/acme/settings/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(SETUP), url
    assert client.get(SETUP).status_code == 200
    turn_on_totp(team.member.user)
    assert client.get("/o/acme/instances/").status_code == 200


def test_the_set_up_page_says_why_once_however_many_pages_sent_the_member_there(team, client_for):
    require(team.organization)
    client = client_for(team.member.user)
    for url in ("/o/acme/", "/o/acme/instances/", "/o/acme/billing/"):
        client.get(url)  # redirected before the set-up page was shown (tabs, quick clicks)

    page = client.get(SETUP).content.decode()

    assert page.count("Acme AI requires two-factor authentication.") == 1


def test_members_of_an_organization_that_does_not_require_it_are_not_held_up(team, client_for):
    assert client_for(team.member.user).get("/o/acme/instances/").status_code == 200


def test_a_token_made_before_two_factor_works_only_where_it_is_not_required(team):
    user = team.member.user
    old, old_value = api_token_create(membership=team.member, name="old", scope=Scope.READ)
    _new, new_value = api_token_create(membership=team.member, name="new", scope=Scope.READ)
    turn_on_totp(user)
    now = timezone.now()
    type(team.member).objects.filter(pk=team.member.pk).update(created_at=now - timedelta(hours=3))
    type(old).objects.filter(pk=old.pk).update(created_at=now - timedelta(hours=2))
    Authenticator.objects.filter(user=user).update(created_at=now - timedelta(hours=1))

    def get(value):
        return Client().get("/api/v1/instances/", headers={"Authorization": f"Bearer {value}"})

    assert get(old_value).status_code == 200  # the organization does not require it
    require(team.organization)
    refused = get(old_value)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "two_factor_required"
    assert get(new_value).status_code == 200  # made after two-factor was on


def test_a_token_of_someone_without_two_factor_stops_where_it_is_required(team):
    _token, value = api_token_create(membership=team.viewer, name="v", scope=Scope.READ)
    require(team.organization)

    response = Client().get("/api/v1/instances/", headers={"Authorization": f"Bearer {value}"})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "two_factor_required"
