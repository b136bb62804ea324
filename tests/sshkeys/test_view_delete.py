"""/o/<org>/ssh-keys/<pk>/delete/: a confirmation page, then the delete."""

import pytest

from portal.sshkeys.models import SshKey
from tests.sshkeys.factories import SshKeyFactory

pytestmark = pytest.mark.django_db


def url(key_or_pk) -> str:
    return f"/o/acme/ssh-keys/{getattr(key_or_pk, 'pk', key_or_pk)}/delete/"


def test_the_confirmation_page_names_the_key(team, client_for):
    key = SshKeyFactory(membership=team.member, name="old laptop")

    response = client_for(team.member.user).get(url(key))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Delete “old laptop”?" in page
    assert key.fingerprint in page
    assert SshKey.objects.filter(pk=key.pk).exists()


def test_a_member_deletes_their_key(team, client_for):
    key = SshKeyFactory(membership=team.member, name="old laptop")
    client = client_for(team.member.user)

    response = client.post(url(key))

    assert response.status_code == 302
    assert response["Location"] == "/o/acme/ssh-keys/"
    assert not SshKey.objects.filter(pk=key.pk).exists()
    assert "Deleted “old laptop”." in client.get("/o/acme/ssh-keys/").content.decode()


@pytest.mark.parametrize("role", ["owner", "admin"])
@pytest.mark.parametrize("shared", [False, True])
def test_owners_and_admins_delete_any_key(team, client_for, role, shared):
    key = SshKeyFactory(membership=team.member, shared=shared)

    response = client_for(team.by_role(role).user).post(url(key))

    assert response.status_code == 302
    assert not SshKey.objects.filter(pk=key.pk).exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_member_gets_403_for_a_shared_key(team, client_for, method):
    key = SshKeyFactory(membership=team.owner, shared=True)

    response = getattr(client_for(team.member.user), method)(url(key))

    assert response.status_code == 403
    assert SshKey.objects.filter(pk=key.pk).exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_member_gets_404_for_a_colleagues_personal_key(team, client_for, method):
    key = SshKeyFactory(membership=team.admin)

    response = getattr(client_for(team.member.user), method)(url(key))

    assert response.status_code == 404
    assert SshKey.objects.filter(pk=key.pk).exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_organizations_key_id_is_404_even_for_an_owner(team, outsider, client_for, method):
    key = SshKeyFactory(membership=outsider, shared=True)

    response = getattr(client_for(team.owner.user), method)(url(key))

    assert response.status_code == 404
    assert SshKey.objects.filter(pk=key.pk).exists()


@pytest.mark.parametrize("pk", [999999, 10**20])
def test_a_missing_key_is_404(team, client_for, pk):
    assert client_for(team.owner.user).get(url(pk)).status_code == 404


def test_deleting_twice_is_404_the_second_time(team, client_for):
    key = SshKeyFactory(membership=team.member)
    client = client_for(team.member.user)

    assert client.post(url(key)).status_code == 302
    assert client.post(url(key)).status_code == 404
