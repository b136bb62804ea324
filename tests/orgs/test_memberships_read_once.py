"""An organization's page reads the user's memberships once: the permission check and the
organization switcher of the layout share them."""

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.orgs.roles import Role
from tests.factories import MembershipFactory, OrganizationFactory


def test_an_organization_page_reads_the_memberships_once_and_lists_every_organization(
    team, client_for
):
    other = OrganizationFactory(name="Side Project", slug="side")
    MembershipFactory(organization=other, user=team.owner.user, role=Role.VIEWER)
    client = client_for(team.owner.user)
    url = reverse("sshkeys:list", args=["acme"])
    client.get(url)  # the session's first request writes the current organization

    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)

    membership_reads = [
        q for q in captured.captured_queries if 'FROM "orgs_membership"' in q["sql"]
    ]
    assert len(membership_reads) == 1
    assert response.context["current_organization"] == team.organization
    page = response.content.decode()
    assert "Acme AI" in page and "Side Project" in page  # the switcher lists both
