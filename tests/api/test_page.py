"""/o/<org>/api/: tokens (created and shown once, revoked after a confirmation), curl examples."""

import re

import pytest

from portal.api.models import ApiToken, Scope
from portal.api.services import api_token_create
from portal.lib.apitoken import hash_secret, parse_token

pytestmark = pytest.mark.django_db
URL = "/o/acme/api/"


@pytest.mark.parametrize("role", ["owner", "admin", "member", "billing", "viewer"])
def test_every_member_has_the_page(team, client_for, role):
    response = client_for(team.by_role(role).user).get(URL)

    assert response.status_code == 200
    page = response.content.decode()
    assert "Create a token" in page and "Try it with curl" in page


def test_outsiders_get_404_and_anonymous_people_the_login(outsider, client, client_for, team):
    assert client.get(URL).status_code == 302
    assert client_for(outsider.user).get(URL).status_code == 404
    token, _ = api_token_create(membership=team.member, name="t", scope=Scope.READ)
    assert client_for(outsider.user).get(f"{URL}tokens/{token.pk}/revoke/").status_code == 404


def test_the_curl_examples_use_this_catalog_and_the_api_url(team, client_for, catalog, ssh_key):
    page = client_for(team.member.user).get(URL).content.decode()

    assert "export BACKFILL_API=http://testserver/api/v1" in page
    assert "Idempotency-Key: $KEY" in page
    assert f"[{ssh_key.pk}]" in page and catalog.ubuntu.code in page
    assert '"instance_type": "gpu_1x_h100"' in page.replace("&quot;", '"')
    for path in ("/instances/?state=running", "/stop/", "/terminate/", "/usage/"):
        assert path in page


def test_the_examples_launch_where_the_organization_has_quota(team, client_for, catalog, ssh_key):
    from tests.instances.conftest import set_quota

    # Quota for L40S in eu-west-1 only: the first offer (1x H100) would be refused.
    set_quota(team.organization, catalog.eu_west, catalog.l40s, on_demand=4)

    page = client_for(team.member.user).get(URL).content.decode().replace("&quot;", '"')

    assert '"instance_type": "gpu_1x_l40s"' in page
    assert '"region": "eu-west-1"' in page


def test_creating_a_token_shows_it_once(team, client_for):
    client = client_for(team.member.user)

    response = client.post(URL, {"name": "CI", "access": "read_write", "expires": "30"})

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    value = re.search(r'<code id="new-token-value">(bf_[^<]+)</code>', page).group(1)
    token = ApiToken.objects.get()
    assert "instances:write" in token.scopes and "billing:read" not in token.scopes
    assert token.name == "CI"
    assert token.expires_at is not None
    assert token.secret_hash == hash_secret(parse_token(value)[1])
    assert "it is not shown again" in page
    # Shown once: the next visit lists it by its prefix only.
    again = client.get(URL).content.decode()
    assert value not in again and token.display_prefix in again


def test_a_token_without_expiry(team, client_for):
    client_for(team.member.user).post(
        URL, {"name": "forever", "access": "read", "expires": "never"}
    )

    assert ApiToken.objects.get().expires_at is None


@pytest.mark.parametrize(
    "data",
    [
        {"name": "", "access": "read", "expires": "30"},
        {"name": "x", "access": "root", "expires": "30"},
        {"name": "x", "access": "read", "expires": "3650"},
    ],
)
def test_bad_input_creates_nothing(team, client_for, data):
    response = client_for(team.member.user).post(URL, data)

    assert response.status_code == 400
    assert "new-token-value" not in response.content.decode()
    assert not ApiToken.objects.exists()


def test_members_see_their_own_tokens_owners_and_admins_all(team, client_for):
    api_token_create(membership=team.member, name="member's", scope=Scope.READ)
    api_token_create(membership=team.viewer, name="viewer's", scope=Scope.READ)

    member_page = client_for(team.member.user).get(URL).content.decode()
    admin_page = client_for(team.admin.user).get(URL).content.decode()

    assert "member&#x27;s" in member_page and "viewer&#x27;s" not in member_page
    assert "member&#x27;s" in admin_page and "viewer&#x27;s" in admin_page


def test_revoke_asks_then_revokes(team, client_for):
    token, value = api_token_create(membership=team.member, name="CI", scope=Scope.READ)
    client = client_for(team.member.user)
    url = f"{URL}tokens/{token.pk}/revoke/"

    confirm = client.get(url)
    assert confirm.status_code == 200 and "Revoke “CI”?" in confirm.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is None

    response = client.post(url)

    assert response.status_code == 302 and response["Location"] == URL
    token.refresh_from_db()
    assert token.revoked_at is not None and token.revoked_by == team.member.user
    assert "revoked" in client.get(URL).content.decode()


def test_a_member_cannot_revoke_someone_elses_token_an_admin_can(team, client_for):
    token, _ = api_token_create(membership=team.viewer, name="theirs", scope=Scope.READ)
    url = f"{URL}tokens/{token.pk}/revoke/"

    assert client_for(team.member.user).post(url).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None

    assert client_for(team.admin.user).post(url).status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_wrong_methods_are_405(team, client_for):
    token, _ = api_token_create(membership=team.member, name="t", scope=Scope.READ)
    client = client_for(team.member.user)

    assert client.delete(URL).status_code == 405
    assert client.put(f"{URL}tokens/{token.pk}/revoke/").status_code == 405
    assert client.get(f"{URL}tokens/999999/revoke/").status_code == 404


def test_the_nav_links_to_the_page(team, client_for):
    page = client_for(team.viewer.user).get("/o/acme/").content.decode()

    assert 'href="/o/acme/api/"' in page
