"""/tokens/: a member lists and revokes their tokens; owners and admins every token."""

import pytest
from django.test import Client

from portal.api.models import ApiToken
from tests.api.conftest import Api, assert_error

pytestmark = pytest.mark.django_db


def test_members_see_their_own_tokens_owners_see_all(team, api_as, token_for):
    token_for(team.admin, name="admin's")
    member = api_as(team.member)
    owner = api_as(team.owner)

    mine = member.get("/tokens/").json()
    everyone = owner.get("/tokens/").json()

    assert [t["owner"] for t in mine] == [team.member.user.email]
    assert mine[0]["this_token"] is True and mine[0]["status"] == "active"
    assert mine[0]["prefix"].startswith("bf_") and "secret" not in str(mine[0]).lower()
    assert {t["owner"] for t in everyone} >= {team.admin.user.email, team.member.user.email}


def test_revoking_a_token_stops_it_at_once(team, api_as, token_for):
    other = token_for(team.member, name="ci")
    ci = ApiToken.objects.get(user=team.member.user, name="ci")
    api = api_as(team.member)

    revoked = api.post(f"/tokens/{ci.pk}/revoke/")

    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert_error(Api(Client(), other).get("/organization/"), 401, "token_revoked")
    assert api.post(f"/tokens/{ci.pk}/revoke/").status_code == 200  # again: nothing changes


def test_a_member_cannot_see_or_revoke_anothers_token(team, api_as, token_for):
    token_for(team.admin, name="admin's")
    theirs = ApiToken.objects.get(name="admin's")
    api = api_as(team.member)

    assert_error(api.get(f"/tokens/{theirs.pk}/"), 404)
    assert_error(api.post(f"/tokens/{theirs.pk}/revoke/"), 404)
    assert ApiToken.objects.get(pk=theirs.pk).revoked_at is None


def test_there_is_no_way_to_create_a_token_with_a_token(team, api_as):
    assert_error(api_as(team.owner).post("/tokens/", {"name": "x"}), 405)
