"""The organization's navigation: the links a member's role may follow, to its own
organization, with the page's section marked (rendered once per role and page, shared by
every organization)."""

import re

import pytest

from portal.orgs.roles import Role, role_allows
from tests.factories import MembershipFactory, OrganizationFactory

LINKS = {  # label: (path under /o/<slug>/, the permission it needs, or None)
    "Dashboard": ("", None),
    "Instances": ("instances/", "instances.view"),
    "Clusters": ("clusters/", "instances.view"),
    "Volumes": ("volumes/", "volumes.view"),
    "Catalog": ("catalog/", None),
    "Quotas": ("quotas/", "quotas.view"),
    "Reservations": ("reservations/", "quotas.view"),
    "Billing": ("billing/", "billing.view"),
    "SSH keys": ("ssh-keys/", "instances.manage"),
    "API": ("api/", None),
    "Members": ("members/", None),
    "Single sign-on": ("sso/", "members.manage"),
    "Audit log": ("audit/", "audit.view"),
    "Settings": ("settings/", None),
}


def navigation(page: str) -> dict[str, tuple[str, bool]]:
    """The organization navigation's links: label -> (href, marked active)."""
    nav = re.search(r'<nav class="nav">(.*?)</nav>', page, re.S)
    assert nav, "no organization navigation"
    return {
        label.strip(): (href, "active" in css)
        for href, css, label in re.findall(
            r'<a href="([^"]+)" class="([^"]*)">(?:<svg.*?</svg>)([^<]+)</a>', nav.group(1), re.S
        )
    }


@pytest.mark.parametrize("role", list(Role))
def test_each_role_sees_the_links_it_may_follow_to_its_own_organization(role, team, client_for):
    page = client_for(team.by_role(role).user).get("/o/acme/catalog/").content.decode()

    links = navigation(page)

    allowed = [
        label
        for label, (_path, needs) in LINKS.items()
        if needs is None or role_allows(role, needs)
    ]
    assert list(links) == allowed
    assert {label: href for label, (href, _active) in links.items()} == {
        label: f"/o/acme/{LINKS[label][0]}" for label in allowed
    }
    assert [label for label, (_href, active) in links.items() if active] == ["Catalog"]


def test_another_organization_with_the_same_role_gets_its_own_links(team, client_for):
    client = client_for(team.owner.user)
    client.get("/o/acme/instances/")
    rival = OrganizationFactory(name="Rival Labs", slug="rival")
    MembershipFactory(organization=rival, user=team.owner.user, role=Role.OWNER)

    links = navigation(client.get("/o/rival/instances/").content.decode())

    assert links["Instances"] == ("/o/rival/instances/", True)
    assert all(href.startswith("/o/rival/") for href, _active in links.values())


@pytest.mark.parametrize(
    ("path", "section"),
    [
        ("", "Dashboard"),
        ("instances/", "Instances"),
        ("instances/launch/", "Instances"),
        ("quotas/", "Quotas"),
        ("quotas/requests/new/", "Quotas"),
        ("billing/", "Billing"),
        ("ssh-keys/", "SSH keys"),
        ("api/", "API"),
        ("webhooks/", "API"),
        ("members/", "Members"),
        ("audit/", "Audit log"),
        ("settings/", "Settings"),
    ],
)
def test_the_pages_section_is_marked(path, section, team, client_for):
    response = client_for(team.owner.user).get(f"/o/acme/{path}")
    assert response.status_code == 200

    links = navigation(response.content.decode())

    assert [label for label, (_href, active) in links.items() if active] == [section]
