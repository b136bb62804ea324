"""/ssh-keys/: the same rules as the SSH keys page, through portal.sshkeys' services."""

import pytest

from portal.api.models import Scope
from portal.sshkeys.models import SshKey
from tests.api.conftest import assert_error
from tests.lib.keys import openssh_private, public_line
from tests.sshkeys.factories import SshKeyFactory

pytestmark = pytest.mark.django_db


def test_list_shows_shared_and_own_keys(team, api):
    shared = SshKeyFactory(membership=team.owner, shared=True, name="deploy")
    mine = SshKeyFactory(membership=team.member, name="laptop")
    SshKeyFactory(membership=team.admin, name="admin's")

    body = api.get("/ssh-keys/").json()

    assert [k["name"] for k in body] == ["deploy", "laptop"]
    assert body[0]["shared"] is True and body[0]["owner"] is None
    assert body[1]["owner"] == team.member.user.email
    assert body[1]["fingerprint"] == mine.fingerprint
    assert body[0]["id"] == shared.pk


def test_add_a_key(team, api):
    line = public_line(comment="me@laptop")

    response = api.post("/ssh-keys/", {"name": "laptop", "public_key": line})

    assert response.status_code == 201, response.content
    body = response.json()
    key = SshKey.objects.get()
    assert body["id"] == key.pk and body["shared"] is False
    assert body["key_type"] == "ssh-ed25519" and body["fingerprint"].startswith("SHA256:")
    assert key.user == team.member.user


def test_a_private_key_or_garbage_is_400_on_the_field(api):
    for text in (openssh_private(), "ssh-ed25519 notbase64", "hello"):
        error = assert_error(api.post("/ssh-keys/", {"name": "a", "public_key": text}), 400)
        assert "public_key" in error["details"]
    assert not SshKey.objects.exists()


def test_a_duplicate_key_is_409(team, api):
    existing = SshKeyFactory(membership=team.member)

    error = assert_error(
        api.post("/ssh-keys/", {"name": "again", "public_key": existing.public_key}),
        409,
        "duplicate",
    )
    assert "public_key" in error["details"]


def test_members_cannot_share_owners_can(team, api, api_as):
    body = {"name": "team", "public_key": public_line(), "shared": True}

    error = assert_error(api.post("/ssh-keys/", body), 403, "forbidden")
    assert "shared" in error["details"]

    assert api_as(team.owner).post("/ssh-keys/", body).status_code == 201
    assert SshKey.objects.get().is_shared


def test_get_and_delete_own_key(team, api):
    key = SshKeyFactory(membership=team.member)

    assert api.get(f"/ssh-keys/{key.pk}/").json()["name"] == key.name
    response = api.delete(f"/ssh-keys/{key.pk}/")

    assert response.status_code == 204 and response.content == b""
    assert not SshKey.objects.exists()


def test_a_member_cannot_delete_a_shared_key(team, api):
    shared = SshKeyFactory(membership=team.owner, shared=True)

    assert_error(api.delete(f"/ssh-keys/{shared.pk}/"), 403, "forbidden")
    assert SshKey.objects.filter(pk=shared.pk).exists()


def test_another_members_personal_key_is_404_to_a_member(team, api):
    theirs = SshKeyFactory(membership=team.admin)

    assert_error(api.get(f"/ssh-keys/{theirs.pk}/"), 404)
    assert_error(api.delete(f"/ssh-keys/{theirs.pk}/"), 404)
    assert SshKey.objects.filter(pk=theirs.pk).exists()


def test_another_organizations_key_is_404_even_to_its_owner_role(team, outsider, api_as):
    theirs = SshKeyFactory(membership=outsider, shared=True)
    api = api_as(team.owner)

    assert_error(api.get(f"/ssh-keys/{theirs.pk}/"), 404, "not_found")
    assert_error(api.delete(f"/ssh-keys/{theirs.pk}/"), 404, "not_found")
    assert theirs.pk not in [k["id"] for k in api.get("/ssh-keys/").json()]
    assert SshKey.objects.filter(pk=theirs.pk).exists()


def test_viewers_read_but_do_not_write_billing_sees_nothing(team, api_as):
    SshKeyFactory(membership=team.owner, shared=True)
    viewer = api_as(team.viewer)
    billing = api_as(team.billing, scope=Scope.READ)

    assert len(viewer.get("/ssh-keys/").json()) == 1
    assert_error(viewer.post("/ssh-keys/", {"name": "a", "public_key": public_line()}), 403)
    assert_error(billing.get("/ssh-keys/"), 403, "forbidden")
