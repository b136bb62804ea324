"""Fine-grained token scopes (area:action), never beyond the creator's role, checked at
creation and at every request; allowed client addresses; the last address used; the old
read / read-and-write tokens migrated to the same reach."""

import re

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import URLPattern, get_resolver

from portal.api import scopes
from portal.api.models import ApiToken, Scope
from portal.api.services import api_token_create
from portal.lib.errors import ApplicationError
from portal.orgs.models import Membership
from portal.orgs.roles import Role
from tests.api.conftest import Api, assert_error

pytestmark = pytest.mark.django_db


def test_a_token_reaches_only_its_scopes(team, api_as, catalog, quota, ssh_key):
    api = api_as(team.owner, scopes=["instances:read", "catalog:read"])

    assert api.get("/instances/").status_code == 200
    assert api.get("/instance-types/").status_code == 200
    error = assert_error(api.post("/instances/", {}), 403, "insufficient_scope")
    assert "instances:write" in error["message"] and "instances:read" in error["message"]
    assert_error(api.get("/invoices/"), 403, "insufficient_scope")
    assert_error(api.get("/webhooks/"), 403, "insufficient_scope")
    assert api.get("/token/").status_code == 200  # who am I: every token


def test_write_includes_read_and_star_means_every_action(team):
    token, _ = api_token_create(
        membership=team.owner, name="t", scopes=["billing:*", "instances:write", "audit:*"]
    )
    assert token.scopes == ["instances:write", "billing:write", "audit:read"]
    assert token.allows("instances", "read") and token.allows("billing", "write")
    assert not token.allows("quotas", "read")


@pytest.mark.parametrize(
    ("asked", "says"),
    [
        (["instances:delete"], "is not a scope"),
        (["rockets:read"], "is not a scope"),
        (["instances"], "is not a scope"),
        (["audit:write"], "audit is read-only"),
        ("instances:read", "are a list"),
        ([], "at least one scope"),
    ],
)
def test_a_scope_that_does_not_exist_is_refused(team, asked, says):
    with pytest.raises(ApplicationError, match=says) as refused:
        api_token_create(membership=team.owner, name="t", scopes=asked)
    assert refused.value.field == "scopes"
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    ("role", "asked", "refused"),
    [
        ("viewer", ["instances:write"], "instances:write"),
        ("viewer", ["billing:read"], "billing:read"),
        ("member", ["billing:read", "instances:write"], "billing:read"),
        ("member", ["webhooks:read"], "webhooks:read"),
        ("billing", ["instances:read"], "instances:read"),
        ("admin", ["audit:read", "organization:write", "members:write"], None),
        ("billing", ["billing:write"], None),
    ],
)
def test_never_more_than_the_creators_role_allows(team, role, asked, refused):
    membership = team.by_role(role)
    if refused is None:
        token, _ = api_token_create(membership=membership, name="t", scopes=asked)
        assert set(token.scopes) == set(asked)
        return
    with pytest.raises(ApplicationError, match=re.escape(refused)) as error:
        api_token_create(membership=membership, name="t", scopes=asked)
    assert error.value.code == "forbidden"
    assert "never has more than its creator's role" in error.value.message


def test_presets_are_what_the_role_allows(team):
    member, _ = api_token_create(membership=team.member, name="m", scope=Scope.READ_WRITE)
    viewer, _ = api_token_create(membership=team.viewer, name="v", scope=Scope.READ)

    assert "instances:write" in member.scopes and "quotas:read" in member.scopes
    assert not any(s.startswith(("billing", "audit", "webhooks")) for s in member.scopes)
    assert all(s.endswith(":read") for s in viewer.scopes)
    with pytest.raises(ApplicationError, match="read only"):
        api_token_create(membership=team.viewer, name="v2", scope=Scope.READ_WRITE)
    # Their own tokens and membership are theirs to change, by an explicit scope.
    token, _ = api_token_create(
        membership=team.viewer, name="v3", scopes=["tokens:write", "membership:write"]
    )
    assert token.scopes == ["tokens:write", "membership:write"]


def test_a_role_that_shrinks_narrows_its_tokens_at_once(team, api_as, catalog, quota, ssh_key):
    api = api_as(team.member, scopes=["instances:write"])
    Membership.objects.filter(pk=team.member.pk).update(role=Role.VIEWER)

    assert_error(api.post("/instances/", {}), 403, "forbidden")
    assert api.get("/instances/").status_code == 200


# --- allowed addresses and last use -----------------------------------------------------------


def test_a_token_works_only_from_its_allowed_networks(team, token_for):
    value = token_for(team.member, allowed_ips="10.9.0.0/16, 2001:db8::/32")
    token = ApiToken.objects.get()
    assert token.allowed_ips == ["10.9.0.0/16", "2001:db8::/32"]

    outside = Api(Client(REMOTE_ADDR="203.0.113.5"), value)
    inside = Api(Client(REMOTE_ADDR="10.9.3.4"), value)
    inside_v6 = Api(Client(REMOTE_ADDR="2001:db8::7"), value)

    error = assert_error(outside.get("/token/"), 403, "ip_not_allowed")
    assert "10.9.0.0/16" in error["message"] and "203.0.113.5" in error["message"]
    assert inside.get("/token/").status_code == 200
    assert inside_v6.get("/token/").status_code == 200
    token.refresh_from_db()
    assert token.last_used_ip == "2001:db8::7"


@pytest.mark.parametrize(
    ("entries", "says"),
    [
        ("10.0.0.1/8", "Did you mean 10.0.0.0/8?"),
        ("not-an-address", "is not an IP address or a network"),
        ("300.1.2.3", "is not an IP address or a network"),
        (" ".join(f"10.0.{n}.0/24" for n in range(21)), "at most 20"),
    ],
)
def test_a_bad_allow_list_entry_is_refused(team, entries, says):
    with pytest.raises(ApplicationError, match=re.escape(says)) as refused:
        api_token_create(membership=team.member, name="t", scope=Scope.READ, allowed_ips=entries)
    assert refused.value.field == "allowed_ips"


def test_last_use_is_shown_with_its_address(team, token_for, client_for):
    value = token_for(team.member, name="deploy")
    api = Api(Client(REMOTE_ADDR="198.51.100.23"), value)
    api.get("/token/")

    page = client_for(team.member.user).get(f"/o/{team.organization.slug}/api/").content.decode()
    listed = api.get("/tokens/").json()[0]

    assert "from 198.51.100.23" in page
    assert listed["last_used_ip"] == "198.51.100.23" and listed["last_used_at"]


# --- the token form ---------------------------------------------------------------------------


def test_the_form_makes_a_token_of_the_chosen_scopes(team, client_for):
    client = client_for(team.admin.user)
    url = f"/o/{team.organization.slug}/api/"

    page = client.get(url).content.decode()
    response = client.post(
        url,
        {
            "name": "billing export",
            "access": "custom",
            "scopes": ["billing:read", "audit:read"],
            "allowed_ips": "203.0.113.0/24",
            "expires": "30",
        },
    )

    assert 'value="billing:write"' in page
    assert response.status_code == 200, response.content.decode()[:2000]
    token = ApiToken.objects.get(name="billing export")
    assert token.scopes == ["billing:read", "audit:read"]
    assert token.allowed_ips == ["203.0.113.0/24"]


def test_the_form_greys_out_what_the_role_does_not_allow_and_refuses_it(team, client_for):
    client = client_for(team.viewer.user)
    url = f"/o/{team.organization.slug}/api/"

    page = client.get(url).content.decode()
    refused = client.post(
        url, {"name": "sneaky", "access": "custom", "scopes": ["instances:write"], "expires": "30"}
    )

    assert re.search(r'value="instances:write"[^>]*disabled', page)
    assert 'value="read_write"' not in page  # the preset is not offered to viewers
    assert refused.status_code == 400
    assert "does not allow instances:write" in refused.content.decode()
    assert not ApiToken.objects.exists()


# --- every view names its area ----------------------------------------------------------------


def test_every_api_view_names_an_area_of_scopes():
    resolver = get_resolver()
    api = resolver.namespace_dict["api"][1].namespace_dict["api_v1"][1]
    areas = {}
    for pattern in api.url_patterns:
        assert isinstance(pattern, URLPattern)
        view = getattr(pattern.callback, "cls", None)
        if view is None or not getattr(view, "token_authenticated", False):
            continue
        areas[pattern.name] = view.api_area
    assert areas.pop("token") == ""  # who am I: open to every token
    unknown = {name: area for name, area in areas.items() if area not in scopes.AREAS}
    assert not unknown, unknown


# --- tokens made before fine-grained scopes -------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_old_tokens_are_migrated_to_the_same_reach(team):
    executor = MigrationExecutor(connection)
    executor.migrate([("api", "0002_periodic_tasks")])
    old_apps = executor.loader.project_state([("api", "0002_periodic_tasks")]).apps
    OldToken = old_apps.get_model("api", "ApiToken")
    for membership, scope in ((team.member, "read_write"), (team.viewer, "read_write")):
        OldToken.objects.create(
            organization_id=membership.organization_id,
            user_id=membership.user_id,
            name=f"{membership.role} old",
            prefix=f"{membership.role[:4]:0<8}"[:8],
            secret_hash="0" * 64,
            scope=scope,
        )
    OldToken.objects.create(
        organization_id=team.owner.organization_id,
        user_id=team.owner.user_id,
        name="owner old",
        prefix="ownr0000",
        secret_hash="0" * 64,
        scope="read",
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    member = ApiToken.objects.get(name="member old")
    viewer = ApiToken.objects.get(name="viewer old")
    owner = ApiToken.objects.get(name="owner old")
    assert member.scopes == scopes.allowed_for(team.member, scopes.WRITE)
    assert "instances:write" in member.scopes
    # A viewer's old read-and-write token writes nothing its role could not.
    assert viewer.scopes == scopes.allowed_for(team.viewer, scopes.READ)
    assert owner.scopes == scopes.allowed_for(team.owner, scopes.READ)
    assert "audit:read" in owner.scopes and not any(":write" in s for s in owner.scopes)
