"""An organization's page reads the user's memberships once: the permission check and the
organization switcher of the layout share them."""

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.orgs.roles import Role
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory


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


def test_an_admin_page_reads_no_memberships_of_the_staff_member(team, client):
    staff = UserFactory(is_staff=True, is_superuser=True)
    MembershipFactory(organization=team.organization, user=staff, role=Role.OWNER)
    client.force_login(staff)
    url = reverse("admin:orgs_suspension_changelist")
    client.get(url)

    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)

    assert response.status_code == 200
    assert not [q for q in captured.captured_queries if 'FROM "orgs_membership"' in q["sql"]]


def test_a_page_outside_the_organizations_reads_them_once_when_its_layout_shows_them(
    team, client_for
):
    client = client_for(team.owner.user)
    client.get("/o/acme/ssh-keys/")  # the session's current organization

    with CaptureQueriesContext(connection) as captured:
        page = client.get(reverse("account_email")).content.decode()

    membership_reads = [
        q for q in captured.captured_queries if 'FROM "orgs_membership"' in q["sql"]
    ]
    assert len(membership_reads) == 1
    assert 'data-testid="org-switcher"' in page and "Acme AI" in page
    assert 'href="/o/acme/instances/"' in page  # the organization's navigation
