"""/o/<org>/ssh-keys/: the list, the empty state and the add form (POSTed to the same page)."""

import pytest

from portal.sshkeys.models import SshKey
from tests.lib.keys import openssh_private, private_key, public_line
from tests.sshkeys.factories import SshKeyFactory

pytestmark = pytest.mark.django_db
URL = "/o/acme/ssh-keys/"


def post(client, **data):
    return client.post(URL, {"name": "laptop", "public_key": public_line(), **data})


def test_the_empty_state_explains_how_to_make_a_key(team, client_for):
    response = client_for(team.member.user).get(URL)

    assert response.status_code == 200
    page = response.content.decode()
    assert "No SSH keys yet" in page
    assert "ssh-keygen -t ed25519" in page
    assert 'name="public_key"' in page
    assert 'name="shared"' not in page  # members cannot share


def test_the_list_shows_name_type_fingerprint_owner_and_date(team, client_for):
    shared = SshKeyFactory(membership=team.owner, shared=True, name="deploy")
    mine = SshKeyFactory(membership=team.member, name="my laptop")
    theirs = SshKeyFactory(membership=team.admin, name="admin box")

    response = client_for(team.member.user).get(URL)

    page = response.content.decode()
    assert "deploy" in page and "my laptop" in page
    assert ">test</span>" in page  # the key's comment, under its name
    assert "admin box" not in page and theirs.fingerprint not in page
    assert f'<span class="mono" title="{mine.public_key}">{mine.fingerprint}</span>' in page
    assert "Ed25519" in page
    assert ">shared<" in page
    assert mine.created_at.strftime("%b") in page
    assert f"/o/acme/ssh-keys/{mine.pk}/delete/" in page
    assert f"/o/acme/ssh-keys/{shared.pk}/delete/" not in page  # only owners/admins delete it


def test_owners_see_everyones_keys_with_their_owner_and_may_delete_all(team, client_for):
    keys = [
        SshKeyFactory(membership=team.member, name="member box"),
        SshKeyFactory(membership=team.owner, shared=True, name="deploy"),
    ]

    page = client_for(team.owner.user).get(URL).content.decode()

    assert team.member.user.display_name in page
    assert 'name="shared"' in page
    for key in keys:
        assert f"/o/acme/ssh-keys/{key.pk}/delete/" in page


def test_the_list_uses_the_same_number_of_queries_for_2_and_20_keys(
    team, client_for, django_assert_max_num_queries
):
    client = client_for(team.owner.user)
    SshKeyFactory.create_batch(2, membership=team.member)
    with django_assert_max_num_queries(100) as few:
        client.get(URL)
    SshKeyFactory.create_batch(18, membership=team.admin)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(URL).content.decode().count("/delete/") == 20


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
def test_adding_a_personal_key(team, client_for, role):
    line = public_line(comment="ann@laptop")

    response = post(client_for(team.by_role(role).user), name="work laptop", public_key=line)

    assert response.status_code == 302
    assert response["Location"] == f"{URL}#content"
    key = SshKey.objects.get()
    assert (key.name, key.public_key, key.user) == ("work laptop", line, team.by_role(role).user)
    page = client_for(team.by_role(role).user).get(URL).content.decode()
    assert "Added “work laptop” (personal key)." in page


def test_an_admin_adds_a_shared_key(team, client_for):
    response = post(client_for(team.admin.user), shared="on")

    assert response.status_code == 302
    assert SshKey.objects.get().is_shared


def test_a_member_sending_shared_anyway_gets_a_personal_key(team, client_for):
    """The form has no such field for them, so the value is ignored."""
    post(client_for(team.member.user), shared="on")

    assert SshKey.objects.get().user == team.member.user


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": ""}, "Give the key a name"),
        ({"name": "x" * 65}, "at most 64 characters"),
        ({"public_key": ""}, "Paste a public key"),
        ({"public_key": "not a key"}, "does not look like an SSH public key"),
        ({"public_key": public_line(private_key("rsa", 1024))}, "at least 2048"),
        ({"public_key": public_line() + "\n" + public_line()}, "more than one key"),
        ({"public_key": "x" * 20000}, "too long to be one public key"),
    ],
)
def test_bad_input_is_shown_and_changes_nothing(team, client_for, data, message):
    response = post(client_for(team.member.user), **data)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not SshKey.objects.exists()


def test_a_private_key_is_refused_with_the_warning_and_not_sent_back(team, client_for):
    secret = openssh_private()

    response = post(client_for(team.member.user), public_key=secret)

    assert response.status_code == 400
    page = response.content.decode()
    assert 'data-testid="private-key-warning"' in page
    assert "Never share a private key" in page
    assert "not the private key" in page  # the field's own error
    assert "PRIVATE KEY-----" not in page
    assert secret.splitlines()[1] not in page
    assert not SshKey.objects.exists()


def test_a_private_key_is_blanked_even_when_the_name_is_wrong_too(team, client_for):
    secret = openssh_private()

    response = post(client_for(team.member.user), name="", public_key=secret)

    page = response.content.decode()
    assert "Give the key a name" in page
    assert "Never share a private key" in page
    assert secret.splitlines()[1] not in page
    assert not SshKey.objects.exists()


def test_other_bad_keys_are_sent_back_for_correction(team, client_for):
    response = post(client_for(team.member.user), public_key="ssh-ed25519 AAAA")

    assert "ssh-ed25519 AAAA</textarea>" in response.content.decode()


def test_a_duplicate_is_refused_naming_the_existing_key(team, client_for):
    key = SshKeyFactory(membership=team.owner, shared=True, name="deploy")

    response = post(client_for(team.member.user), name="again", public_key=key.public_key)

    assert response.status_code == 400
    assert "already in Acme AI as “deploy”" in response.content.decode()
    assert SshKey.objects.count() == 1
