import pytest

from portal.lib.errors import ApplicationError
from portal.lib.sshkey import parse_public_key
from portal.sshkeys.models import SshKey
from portal.sshkeys.services import sshkey_add, sshkey_delete
from tests.lib.keys import openssh_private, private_key, public_line
from tests.sshkeys.factories import SshKeyFactory

pytestmark = pytest.mark.django_db


def add(membership, *, name="laptop", public_key=None, shared=False) -> SshKey:
    return sshkey_add(
        membership=membership,
        name=name,
        public_key=public_line(comment="ann@laptop") if public_key is None else public_key,
        shared=shared,
    )


# Adding


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
def test_members_who_manage_instances_add_personal_keys(team, role):
    membership = team.by_role(role)
    line = public_line(comment="ann@laptop")

    key = add(membership, name="  work   laptop ", public_key=f"\n{line}\n")

    key.refresh_from_db()
    parsed = parse_public_key(line)
    assert key.organization == team.organization
    assert key.user == membership.user
    assert key.created_by == membership.user
    assert key.name == "work laptop"
    assert key.public_key == line
    assert (key.key_type, key.bits, key.fingerprint) == ("ssh-ed25519", 256, parsed.fingerprint)
    assert not key.is_shared


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owners_and_admins_add_shared_keys(team, role):
    key = add(team.by_role(role), shared=True)

    assert key.user is None
    assert key.is_shared
    assert key.created_by == team.by_role(role).user


def test_a_member_cannot_share_a_key(team):
    with pytest.raises(ApplicationError) as caught:
        add(team.member, shared=True)

    assert caught.value.code == "forbidden"
    assert caught.value.field == "shared"
    assert not SshKey.objects.exists()


@pytest.mark.parametrize("role", ["viewer", "billing"])
@pytest.mark.parametrize("shared", [False, True])
def test_viewers_and_billing_cannot_add_keys(team, role, shared):
    with pytest.raises(ApplicationError) as caught:
        add(team.by_role(role), shared=shared)

    assert caught.value.code == "forbidden"
    assert not SshKey.objects.exists()


@pytest.mark.parametrize(
    ("kind", "bits", "key_type"),
    [
        ("ecdsa", 256, "ecdsa-sha2-nistp256"),
        ("ecdsa", 384, "ecdsa-sha2-nistp384"),
        ("ecdsa", 521, "ecdsa-sha2-nistp521"),
        ("rsa", 2048, "ssh-rsa"),
    ],
)
def test_every_accepted_type_is_stored_with_its_type_and_size(team, kind, bits, key_type):
    key = add(team.member, public_key=public_line(private_key(kind, bits)))

    assert (key.key_type, key.bits) == (key_type, bits)


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "Give the key a name"), ("   ", "Give the key a name"), ("x" * 65, "at most 64")],
)
def test_a_name_is_required_and_at_most_64_characters(team, name, message):
    with pytest.raises(ApplicationError) as caught:
        add(team.member, name=name)

    assert caught.value.field == "name"
    assert message in caught.value.message
    assert not SshKey.objects.exists()


def test_a_name_of_64_characters_is_fine(team):
    assert add(team.member, name="x" * 64).name == "x" * 64


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("garbage", "invalid"),
        (public_line(private_key("rsa", 1024)), "too_short"),
        (public_line() + "\n" + public_line(), "multiple"),
        ("", "empty"),
    ],
)
def test_a_bad_key_changes_nothing(team, text, code):
    with pytest.raises(ApplicationError) as caught:
        add(team.member, public_key=text)

    assert caught.value.field == "public_key"
    assert caught.value.code == code
    assert not SshKey.objects.exists()


def test_a_private_key_is_refused_with_the_warning(team):
    with pytest.raises(ApplicationError) as caught:
        add(team.member, public_key=openssh_private())

    assert caught.value.code == "private_key"
    assert "Never share a private key" in caught.value.message
    assert not SshKey.objects.exists()


# Duplicates


def test_the_same_key_twice_in_an_organization_is_refused_naming_the_first(team):
    line = public_line()
    add(team.member, name="laptop", public_key=line)

    with pytest.raises(ApplicationError) as caught:
        add(team.member, name="again", public_key=line + " other comment")

    assert caught.value.code == "duplicate"
    assert caught.value.field == "public_key"
    assert "“laptop”" in caught.value.message
    assert "your personal key" in caught.value.message
    assert SshKey.objects.count() == 1


def test_a_duplicate_of_a_shared_key_says_it_is_shared(team):
    line = public_line()
    add(team.owner, name="deploy", public_key=line, shared=True)

    with pytest.raises(ApplicationError) as caught:
        add(team.member, public_key=line)

    assert "“deploy” (shared with the organization)" in caught.value.message


def test_an_admin_is_told_whose_personal_key_it_is(team):
    line = public_line()
    add(team.member, name="bob's laptop", public_key=line)

    with pytest.raises(ApplicationError) as caught:
        add(team.admin, public_key=line, shared=True)

    assert "“bob's laptop”" in caught.value.message
    assert team.member.user.email in caught.value.message


def test_a_member_is_not_told_the_name_of_a_colleagues_personal_key(team):
    line = public_line()
    add(team.admin, name="admin's secret box", public_key=line)

    with pytest.raises(ApplicationError) as caught:
        add(team.member, public_key=line)

    assert caught.value.code == "duplicate"
    assert "admin's secret box" not in caught.value.message
    assert "another member's personal key" in caught.value.message


def test_the_same_key_in_two_organizations_is_fine(team, outsider):
    line = public_line()

    add(team.member, public_key=line)
    add(outsider, public_key=line)

    assert SshKey.objects.count() == 2


# Deleting


def test_a_member_deletes_their_own_personal_key(team):
    key = SshKeyFactory(membership=team.member)

    sshkey_delete(membership=team.member, key=key)

    assert not SshKey.objects.exists()


@pytest.mark.parametrize("role", ["owner", "admin"])
@pytest.mark.parametrize("shared", [False, True])
def test_owners_and_admins_delete_any_key(team, role, shared):
    key = SshKeyFactory(membership=team.member, shared=shared)

    sshkey_delete(membership=team.by_role(role), key=key)

    assert not SshKey.objects.exists()


@pytest.mark.parametrize(
    ("actor", "owner", "shared"),
    [
        ("member", "owner", True),  # a shared key
        ("member", "admin", False),  # someone else's personal key
        ("viewer", "viewer", False),  # even their own (a key kept from an earlier role)
        ("billing", "owner", True),
        ("viewer", "owner", True),
    ],
)
def test_others_cannot_delete(team, actor, owner, shared):
    key = SshKeyFactory(membership=team.by_role(owner), shared=shared)

    with pytest.raises(ApplicationError) as caught:
        sshkey_delete(membership=team.by_role(actor), key=key)

    assert caught.value.code == "forbidden"
    assert SshKey.objects.filter(pk=key.pk).exists()


def test_nobody_deletes_another_organizations_key(team, outsider):
    key = SshKeyFactory(membership=outsider, shared=True)

    with pytest.raises(ApplicationError) as caught:
        sshkey_delete(membership=team.owner, key=key)

    assert caught.value.code == "not_found"
    assert SshKey.objects.filter(pk=key.pk).exists()


def test_the_comment_is_kept_and_shown(team):
    line = public_line(comment="ann@laptop  (work)")

    key = add(team.member, public_key=line)

    assert key.comment == "ann@laptop (work)"
    assert SshKey(public_key=" ".join(line.split()[:2])).comment == ""
