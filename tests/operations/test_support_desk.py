"""The support desk: find a customer by what the caller says, see the organization on one
page, and keep notes with author and time."""

import pytest

from portal.audit.models import AuditEntry
from portal.audit.services import audit_record
from portal.operations.models import StaffNote
from portal.orgs.services import organization_suspend

pytestmark = pytest.mark.django_db

SEARCH = "/admin/customers/"


def page_of(team) -> str:
    return f"/admin/customers/{team.organization.pk}/"


@pytest.fixture
def desk(client_for, staff):
    return client_for(staff)


@pytest.mark.parametrize(
    "query",
    ["Acme", "acme", "OWNER_EMAIL", "box-0", "203.0.113.77"],
)
def test_a_customer_is_found_by_email_name_instance_or_ip(
    team, outsider, desk, make_instance, query
):
    make_instance(state="running", ip="203.0.113.77")  # box-0
    if query == "OWNER_EMAIL":
        query = team.owner.user.email

    response = desk.get(SEARCH, {"q": query})

    assert response.status_code == 302
    assert response["Location"] == page_of(team)


def test_several_matches_are_listed_and_none_is_said(team, outsider, desk):
    listing = desk.get(SEARCH, {"q": "example.com"}).content.decode()
    assert "Acme AI" in listing and "Rival Labs" in listing

    nothing = desk.get(SEARCH, {"q": "no-such-thing"}).content.decode()
    assert "No organization matches “no-such-thing”" in nothing


def test_the_customer_page_shows_everything_about_the_organization(
    team, outsider, staff, desk, make_instance
):
    make_instance(state="running", name="trainer", ip="203.0.113.8")
    organization_suspend(organization=team.organization, reason="Card declined.", by=staff)
    audit_record(action="org.renamed", organization=team.organization, actor=team.owner)

    page = desk.get(page_of(team)).content.decode()

    for section in (
        "Staff notes",
        "Members (5)",
        "Spend by month",
        "Invoices",
        "Instances",
        "Quotas and requests",
        "Reservations",
        "Suspensions",
        "Audit trail",
    ):
        assert section in page, section
    assert team.viewer.user.email in page
    assert "trainer" in page and "203.0.113.8" in page
    assert "Card declined." in page and "in force" in page
    assert "Organization renamed" in page
    assert "Rival Labs" not in page


def test_staff_add_notes_with_author_and_time(team, staff, desk):
    response = desk.post(page_of(team), {"body": "Called about the invoice; pays Friday."})

    assert response.status_code == 302
    note = StaffNote.objects.get()
    assert (note.author, note.author_email) == (staff, staff.email)
    page = desk.get(page_of(team)).content.decode()
    assert "Called about the invoice; pays Friday." in page
    assert f"{staff.email} · " in page
    # Not in the customer's own audit log (its owners read that; the notes are staff's).
    assert not AuditEntry.objects.filter(action__contains="note").exists()


def test_an_empty_note_is_refused_and_nothing_is_saved(team, desk):
    response = desk.post(page_of(team), {"body": "   "})

    assert response.status_code == 400
    assert "Write the note." in response.content.decode()
    assert not StaffNote.objects.exists()


def test_customers_cannot_open_the_desk(team, client_for):
    client = client_for(team.owner.user)
    assert client.get(SEARCH, {"q": "Acme"}).status_code == 302  # to the admin's login
    assert client.get(page_of(team)).status_code == 302
    assert client.post(page_of(team), {"body": "x"}).status_code == 302
    assert not StaffNote.objects.exists()


def test_an_unknown_organization_is_a_404(desk):
    assert desk.get("/admin/customers/999999/").status_code == 404
