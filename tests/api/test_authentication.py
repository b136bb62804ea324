"""Bearer tokens: who they act as, and every way a token is refused (401) or narrowed (403)."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from portal.api.models import ApiToken, Scope
from portal.api.services import api_token_revoke
from portal.lib.apitoken import hash_secret, parse_token
from portal.orgs.models import Membership
from portal.orgs.roles import Role
from tests.api.conftest import Api, assert_error
from tests.sshkeys.factories import SshKeyFactory

pytestmark = pytest.mark.django_db


def test_the_token_acts_in_its_organization_with_its_users_role(team, api_as):
    response = api_as(team.viewer, scope=Scope.READ).get("/token/")

    assert response.status_code == 200
    body = response.json()
    assert body["organization"] == {"slug": "acme", "name": "Acme AI"}
    assert body["user"] == team.viewer.user.email
    assert body["role"] == "viewer"
    assert "instances:read" in body["token"]["scopes"]
    assert not any(scope.endswith(":write") for scope in body["token"]["scopes"])
    assert body["token"]["prefix"].startswith("bf_") and body["token"]["prefix"].endswith("_…")
    assert "instances.view" in body["permissions"]
    assert "instances.manage" not in body["permissions"]


def test_only_a_hash_of_the_secret_is_stored(team, token_for):
    value = token_for(team.member)

    prefix, secret = parse_token(value)
    token = ApiToken.objects.get(prefix=prefix)
    assert token.secret_hash == hash_secret(secret)
    stored = " ".join(str(getattr(token, f.attname)) for f in ApiToken._meta.concrete_fields)
    assert secret not in stored and value not in stored


@pytest.mark.parametrize(
    "header",
    [
        "",  # no header at all: not_authenticated
        "Bearer",
        "Bearer ",
        "Token bf_12345678_" + "a" * 43,
        "Basic dXNlcjpwYXNz",
        "Bearer bf_12345678_tooshort",
        "Bearer bf_zzzzzzzz_" + "a" * 43,
        "Bearer " + "x" * 5000,
        "Bearer bf_12345678_" + "a" * 43,  # well formed, unknown prefix
    ],
)
def test_a_missing_or_malformed_token_is_401(db, header):
    response = Client().get("/api/v1/token/", headers={"Authorization": header} if header else {})

    error = assert_error(response, 401)
    assert error["code"] == ("not_authenticated" if not header else "invalid_token")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_wrong_secret_with_a_real_prefix_is_401(team, token_for):
    prefix, _secret = parse_token(token_for(team.member))

    response = Api(Client(), f"bf_{prefix}_{'A' * 43}").get("/token/")

    assert_error(response, 401, "invalid_token")


def test_a_revoked_token_is_401_from_the_next_request_on(team, token_for):
    value = token_for(team.member)
    api = Api(Client(), value)
    assert api.get("/token/").status_code == 200

    api_token_revoke(membership=team.member, token=ApiToken.objects.get())

    error = assert_error(api.get("/token/"), 401, "token_revoked")
    assert "revoked" in error["message"]


def test_an_expired_token_is_401(team, token_for):
    value = token_for(team.member, expires_at=timezone.now() + timedelta(days=1))
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert_error(Api(Client(), value).get("/token/"), 401, "token_expired")


def test_a_removed_members_token_stops_working_at_once(team, token_for):
    value = token_for(team.member)

    team.member.delete()

    assert_error(Api(Client(), value).get("/instances/"), 401, "token_inactive")


def test_a_token_of_an_earlier_membership_stays_dead_after_an_invitation_back(team, token_for):
    value = token_for(team.member)
    user = team.member.user
    team.member.delete()
    Membership.objects.create(
        organization=team.organization,
        user=user,
        role=Role.OWNER,
        created_at=timezone.now() + timedelta(seconds=1),
    )

    assert_error(Api(Client(), value).get("/token/"), 401, "token_inactive")


def test_a_deactivated_user_is_refused(team, token_for):
    value = token_for(team.member)
    team.member.user.is_active = False
    team.member.user.save()

    assert_error(Api(Client(), value).get("/token/"), 401, "token_inactive")


def test_a_role_change_applies_to_the_next_request(team, api, catalog):
    key = SshKeyFactory(membership=team.member)
    assert api.get("/ssh-keys/").status_code == 200

    Membership.objects.filter(pk=team.member.pk).update(role=Role.VIEWER)

    error = assert_error(api.delete(f"/ssh-keys/{key.pk}/"), 403, "forbidden")
    assert "viewer" in error["message"]
    assert api.get("/ssh-keys/").status_code == 200  # viewers still read


def test_a_read_only_token_is_refused_every_write_and_nothing_changes(team, api_as, catalog):
    key = SshKeyFactory(membership=team.owner, shared=True)
    api = api_as(team.owner, scope=Scope.READ)

    assert api.get("/ssh-keys/").status_code == 200
    error = assert_error(api.delete(f"/ssh-keys/{key.pk}/"), 403, "insufficient_scope")
    assert "do not include ssh_keys:write" in error["message"]
    assert_error(api.post("/ssh-keys/", {"name": "x", "public_key": key.public_key}), 403)
    assert_error(api.post("/instances/", {}), 403, "insufficient_scope")
    assert_error(api.post("/quota-requests/", {}), 403, "insufficient_scope")
    assert key.__class__.objects.filter(pk=key.pk).exists()


def test_last_used_is_recorded_at_most_once_a_minute(team, token_for):
    value = token_for(team.member)
    api = Api(Client(), value)
    assert ApiToken.objects.get().last_used_at is None

    api.get("/token/")
    first = ApiToken.objects.get().last_used_at
    assert first is not None
    api.get("/token/")
    assert ApiToken.objects.get().last_used_at == first

    ApiToken.objects.update(last_used_at=timezone.now() - timedelta(minutes=2))
    api.get("/token/")
    assert ApiToken.objects.get().last_used_at > first


def test_a_session_login_is_not_an_api_credential(team, client_for):
    """The console's cookie does not open the API (no CSRF exposure through it)."""
    response = client_for(team.owner.user).get("/api/v1/token/")

    assert_error(response, 401, "not_authenticated")
