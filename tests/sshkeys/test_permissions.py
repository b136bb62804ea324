"""Every SSH key URL, for every role, an outsider and an anonymous visitor."""

import pytest

from portal.sshkeys.models import SshKey
from tests.lib.keys import public_line
from tests.sshkeys.factories import SshKeyFactory

pytestmark = pytest.mark.django_db

ALLOWED = {"owner", "admin", "member"}


@pytest.fixture
def pages(team):
    """(method, url, data) for each page, against a key of the member's that all may delete."""
    key = SshKeyFactory(membership=team.member)
    return {
        "list": ("get", "/o/acme/ssh-keys/", None),
        "add": ("post", "/o/acme/ssh-keys/", {"name": "k", "public_key": public_line()}),
        "delete page": ("get", f"/o/acme/ssh-keys/{key.pk}/delete/", None),
        "delete": ("post", f"/o/acme/ssh-keys/{key.pk}/delete/", {}),
    }


def request(client, page):
    method, url, data = page
    return getattr(client, method)(url, data) if data is not None else getattr(client, method)(url)


@pytest.mark.parametrize("page", ["list", "add", "delete page", "delete"])
@pytest.mark.parametrize("role", ["owner", "admin", "member", "billing", "viewer"])
def test_roles(team, client_for, pages, page, role):
    before = set(SshKey.objects.values_list("pk", flat=True))

    response = request(client_for(team.by_role(role).user), pages[page])

    if role in ALLOWED:
        assert response.status_code == (200 if page in {"list", "delete page"} else 302)
    else:
        assert response.status_code == 403
        assert set(SshKey.objects.values_list("pk", flat=True)) == before


@pytest.mark.parametrize("page", ["list", "add", "delete page", "delete"])
def test_outsiders_get_404(team, outsider, client_for, pages, page):
    before = SshKey.objects.count()

    response = request(client_for(outsider.user), pages[page])

    assert response.status_code == 404
    assert SshKey.objects.count() == before


@pytest.mark.parametrize("page", ["list", "add", "delete page", "delete"])
def test_anonymous_visitors_are_sent_to_log_in(client, pages, page):
    response = request(client, pages[page])

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("page", ["list", "delete page"])
@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_other_methods_are_405(team, client_for, pages, page, method):
    _, url, _ = pages[page]

    response = getattr(client_for(team.owner.user), method)(url)

    assert response.status_code == 405
    assert SshKey.objects.count() == 1


def test_the_nav_links_to_ssh_keys_above_members(team, client_for):
    page = client_for(team.member.user).get("/o/acme/").content.decode()

    assert page.index('href="/o/acme/ssh-keys/"') < page.index('href="/o/acme/members/"')
