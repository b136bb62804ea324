import pytest
from django.http import Http404

from portal.lib.errors import ApplicationError
from portal.sshkeys.selectors import (
    sshkey_get_for_member,
    sshkey_list_for_launch,
    sshkey_list_for_member,
)
from tests.sshkeys.factories import SshKeyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def keys(team, outsider):
    """A shared key, a personal key for the owner, the admin and the member, one elsewhere."""
    return {
        "shared": SshKeyFactory(membership=team.owner, shared=True, name="shared"),
        "owner": SshKeyFactory(membership=team.owner, name="owner's"),
        "admin": SshKeyFactory(membership=team.admin, name="admin's"),
        "member": SshKeyFactory(membership=team.member, name="member's"),
        "rival": SshKeyFactory(membership=outsider, shared=True, name="rival's"),
    }


def names(queryset):
    return sorted(key.name for key in queryset)


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owners_and_admins_see_every_key_of_their_organization(team, keys, role):
    visible = sshkey_list_for_member(membership=team.by_role(role))

    assert names(visible) == ["admin's", "member's", "owner's", "shared"]


def test_a_member_sees_shared_keys_and_their_own(team, keys):
    assert names(sshkey_list_for_member(membership=team.member)) == ["member's", "shared"]


def test_a_viewer_sees_shared_keys_and_billing_sees_none(team, keys):
    assert names(sshkey_list_for_member(membership=team.viewer)) == ["shared"]
    assert names(sshkey_list_for_member(membership=team.billing)) == []


def test_visible_keys_cost_one_query(team, keys, django_assert_num_queries):
    with django_assert_num_queries(1):
        [key.user for key in sshkey_list_for_member(membership=team.owner)]


def test_get_for_member(team, outsider, keys):
    assert sshkey_get_for_member(membership=team.member, pk=keys["member"].pk) == keys["member"]
    assert sshkey_get_for_member(membership=team.member, pk=keys["shared"].pk) == keys["shared"]
    assert sshkey_get_for_member(membership=team.owner, pk=keys["member"].pk) == keys["member"]
    for membership, pk in [
        (team.member, keys["admin"].pk),  # a colleague's personal key
        (team.member, keys["rival"].pk),  # another organization's
        (outsider, keys["shared"].pk),
        (team.billing, keys["shared"].pk),
        (team.member, 10**6),
    ]:
        with pytest.raises(Http404):
            sshkey_get_for_member(membership=membership, pk=pk)


# The contract with instances: sshkey_list_for_launch(*, membership, ids) -> list[SshKey]


def test_for_launch_returns_the_chosen_keys_in_order_without_duplicates(team, keys):
    chosen = sshkey_list_for_launch(
        membership=team.member,
        ids=[keys["member"].pk, keys["shared"].pk, keys["member"].pk],
    )

    assert chosen == [keys["member"], keys["shared"]]


def test_for_launch_with_no_key_asks_for_one(team, keys):
    with pytest.raises(ApplicationError) as caught:
        sshkey_list_for_launch(membership=team.member, ids=[])

    assert caught.value.message.startswith("Choose at least one SSH key")
    assert caught.value.field == "ssh_keys"


@pytest.mark.parametrize(
    ("role", "key"),
    [
        ("member", "admin"),  # not visible to them
        ("member", "rival"),  # another organization's
        ("owner", "rival"),
        ("billing", "shared"),
    ],
)
def test_for_launch_refuses_any_key_the_member_cannot_see(team, keys, role, key):
    with pytest.raises(ApplicationError) as caught:
        sshkey_list_for_launch(membership=team.by_role(role), ids=[keys["shared"].pk, keys[key].pk])

    assert caught.value.code == "not_found"
    assert caught.value.field == "ssh_keys"


@pytest.mark.parametrize("bad", [10**6, 10**20, -1, "abc", None])
def test_for_launch_refuses_ids_that_are_no_key(team, keys, bad):
    with pytest.raises(ApplicationError) as caught:
        sshkey_list_for_launch(membership=team.member, ids=[keys["shared"].pk, bad])

    assert caught.value.code == "not_found"


def test_for_launch_reads_the_keys_in_one_query(team, keys, django_assert_num_queries):
    with django_assert_num_queries(1):
        chosen = sshkey_list_for_launch(
            membership=team.admin, ids=[keys["admin"].pk, keys["member"].pk]
        )

    assert [key.public_key for key in chosen] == [
        keys["admin"].public_key,
        keys["member"].public_key,
    ]
