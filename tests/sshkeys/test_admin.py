import pytest

from tests.factories import UserFactory
from tests.sshkeys.factories import SshKeyFactory

pytestmark = pytest.mark.django_db
URL = "/admin/sshkeys/sshkey/"


@pytest.fixture
def staff(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_the_changelist_searches_by_name_fingerprint_and_organization(team, outsider, staff):
    ours = SshKeyFactory(membership=team.member, name="acme laptop")
    theirs = SshKeyFactory(membership=outsider, name="rival box")

    for query, shown, hidden in [
        ("acme laptop", ours, theirs),
        (theirs.fingerprint, theirs, ours),
        ("Rival Labs", theirs, ours),
    ]:
        page = staff.get(URL, {"q": query}).content.decode()
        assert shown.name in page
        assert hidden.name not in page


def test_the_changelist_filters_by_type(team, staff):
    SshKeyFactory(membership=team.member, name="ed key")

    assert "ed key" in staff.get(URL, {"key_type": "ssh-ed25519"}).content.decode()
    assert "ed key" not in staff.get(URL, {"key_type": "ssh-rsa"}).content.decode()


def test_operators_cannot_add_keys_past_the_parser_but_can_open_and_delete_them(team, staff):
    key = SshKeyFactory(membership=team.member)

    assert staff.get(f"{URL}add/").status_code == 403
    assert staff.get(f"{URL}{key.pk}/change/").status_code == 200
    assert staff.post(f"{URL}{key.pk}/delete/", {"post": "yes"}).status_code == 302
