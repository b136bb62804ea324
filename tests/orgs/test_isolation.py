"""Nobody outside an organization can see or touch anything under /o/<slug>/.

The routes come from the project's URLconf, so pages added by later issues are checked too.
Where a route takes an id, it is filled with the id of one of the team's own objects (see
`real_ids`), so that a 404 means "not yours" rather than "no such row"; unknown ids get 1.
"""

import re

import pytest
from django.urls import URLResolver, get_resolver

from portal.catalog.models import Region
from portal.orgs.models import Invitation, Membership
from portal.orgs.services import invitation_create
from portal.volumes.models import Volume

pytestmark = pytest.mark.django_db

ORG_PREFIX = "o/<slug:org>/"
PLACEHOLDERS = {"int": "1", "uuid": "00000000-0000-0000-0000-000000000001"}


def org_routes() -> list[str]:
    """Every route under o/<slug:org>/, such as 'o/<slug:org>/members/<int:pk>/role/'."""

    def walk(patterns, prefix):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route)
            else:
                yield route

    return sorted({r for r in walk(get_resolver().url_patterns, "") if r.startswith(ORG_PREFIX)})


def url_for(route: str, slug: str, real_ids: dict) -> str:
    def fill(match):
        converter, name = match.groups()
        if name == "org":
            return slug
        segment_before = route[: match.start()].rstrip("/").rsplit("/", 1)[-1]
        return str(real_ids.get(segment_before, PLACEHOLDERS.get(converter, "x")))

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, route)


@pytest.fixture
def real_ids(team):
    """Ids of the team's objects, by the path segment before the id: members/<int:pk>/..."""
    invitation, _ = invitation_create(actor=team.owner, email="newcomer@example.com", role="member")
    region = Region.objects.create(code="us-east-1", name="US East")
    volume = Volume.objects.create(
        organization=team.organization, region=region, name="datasets", size_gb=100
    )
    return {"members": team.member.pk, "invitations": invitation.pk, "volumes": volume.pk}


@pytest.fixture
def post_only(team, client_for, real_ids) -> set[str]:
    """Routes that answer GET with 405 even to the owner: a 405 there reveals nothing."""
    owner = client_for(team.owner.user)
    routes = {r for r in org_routes() if owner.get(url_for(r, "acme", real_ids)).status_code == 405}
    owner.logout()
    return routes


def answers(client, slug: str, real_ids: dict):
    """(route, method, url, response) for a GET and a POST on every organization route."""
    for route in org_routes():
        url = url_for(route, slug, real_ids)
        for method in ("get", "post"):
            yield route, method, url, getattr(client, method)(url)


def test_the_walk_finds_the_organization_pages():
    routes = org_routes()

    assert "o/<slug:org>/" in routes
    assert "o/<slug:org>/members/<int:pk>/role/" in routes
    assert "o/<slug:org>/volumes/<int:pk>/delete/" in routes


@pytest.mark.parametrize("slug", ["acme", "rival"], ids=["their slug", "own slug"])
def test_an_outsider_gets_404_for_everything_of_another_organization(
    team, outsider, client_for, real_ids, post_only, slug
):
    """With the team's slug, or with their own slug and the team's ids."""
    client = client_for(outsider.user)

    wrong = [
        f"{method.upper()} {url} -> {response.status_code}"
        for route, method, url, response in answers(client, slug, real_ids)
        if response.status_code != 404
        and not (method == "get" and route in post_only and response.status_code == 405)
        and not (slug == "rival" and "<int:" not in route)  # their own pages
    ]

    assert wrong == []
    assert Membership.objects.filter(organization=team.organization).count() == 5
    assert Invitation.objects.get().status == "pending"
    volume = Volume.objects.get()
    assert (volume.state, volume.size_gb) == ("creating", 100)  # neither resized nor deleted


def test_anonymous_visitors_are_sent_to_log_in_from_every_organization_page(
    client, real_ids, post_only
):
    wrong = [
        f"{method.upper()} {url} -> {response.status_code}"
        for route, method, url, response in answers(client, "acme", real_ids)
        if not response.get("Location", "").startswith("/accounts/login/")
        and not (method == "get" and route in post_only and response.status_code == 405)
    ]

    assert wrong == []


@pytest.mark.parametrize(
    "action", ["members/invite/", "members/{pk}/role/", "members/{pk}/remove/"]
)
def test_a_viewer_is_forbidden_to_manage_members(team, client_for, action):
    client = client_for(team.viewer.user)
    url = "/o/acme/" + action.format(pk=team.member.pk)

    response = client.post(url, {"email": "newcomer@example.com", "role": "owner"})

    assert response.status_code == 403
    team.member.refresh_from_db()
    assert team.member.role == "member"
    assert not Invitation.objects.exists()
