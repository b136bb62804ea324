"""The organization's audit page at /o/<slug>/audit/: who sees it, what it shows, filters, pages."""

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.audit.models import AuditEntry
from portal.audit.services import audit_record

pytestmark = pytest.mark.django_db

URL = "/o/acme/audit/"


def shown(response) -> list[str]:
    """The action codes in the table, top to bottom."""
    assert response.status_code == 200
    return [entry.action for entry in response.context["entries"]]


def record_at(at: datetime, *, action: str, organization) -> AuditEntry:
    """An entry written at another time (audit_record always writes "now")."""
    return AuditEntry.objects.create(
        at=at,
        action=action,
        actor_kind="system",
        organization=organization,
        organization_label=organization.name,
    )


@pytest.fixture
def history(team, outsider):
    """Entries of the team and of another organization, oldest first."""
    org = team.organization
    audit_record(action="org.renamed", organization=org, actor=team.owner)
    audit_record(action="member.role_changed", organization=org, actor=team.owner)
    audit_record(action="invitation.created", organization=org, actor=team.admin)
    audit_record(action="instance.launched", organization=org, actor=team.member)
    audit_record(action="org.renamed", organization=outsider.organization, actor=outsider)
    audit_record(action="auth.login", actor=team.owner.user)  # no organization


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owners_and_admins_see_their_organizations_entries_newest_first(
    team, client_for, history, role
):
    response = client_for(team.by_role(role).user).get(URL)

    assert shown(response) == [
        "instance.launched",
        "invitation.created",
        "member.role_changed",
        "org.renamed",
    ]
    page = response.content.decode()
    assert "Instance launched" in page and "Acme AI" in page
    assert "Rival Labs" not in page


@pytest.mark.parametrize("role", ["member", "billing", "viewer"])
def test_other_roles_are_refused(team, client_for, role):
    assert client_for(team.by_role(role).user).get(URL).status_code == 403


def test_an_outsider_gets_a_404_for_any_method(outsider, client_for, team):
    client = client_for(outsider.user)

    assert client.get(URL).status_code == 404
    assert client.post(URL).status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(client, team):
    response = client.get(URL)

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_page_only_reads(team, client_for):
    assert client_for(team.owner.user).post(URL).status_code == 405


def test_the_nav_link_is_there_for_owners_and_admins_only(team, client_for):
    for role, expected in [("owner", True), ("admin", True), ("member", False), ("viewer", False)]:
        page = client_for(team.by_role(role).user).get("/o/acme/").content.decode()
        assert ('href="/o/acme/audit/"' in page) is expected, role


def test_the_empty_state(team, client_for):
    response = client_for(team.owner.user).get(URL)

    assert shown(response) == []
    assert "Nothing recorded yet" in response.content.decode()


def test_the_empty_state_of_filters(team, client_for, history):
    response = client_for(team.owner.user).get(URL, {"action": "quota"})

    assert shown(response) == []
    page = response.content.decode()
    assert "No entries match these filters" in page and "Show everything" in page


def test_filter_by_action_group_or_code(team, client_for, history):
    client = client_for(team.owner.user)

    assert shown(client.get(URL, {"action": "org"})) == ["org.renamed"]
    assert shown(client.get(URL, {"action": "member.role_changed"})) == ["member.role_changed"]
    assert shown(client.get(URL, {"action": ""})) != []


def test_an_unknown_action_is_a_form_error_and_filters_nothing(team, client_for, history):
    response = client_for(team.owner.user).get(URL, {"action": "org.renamed'; --"})

    assert response.status_code == 400  # a form with an error, as on every page
    assert len(response.context["entries"]) == 4
    assert response.context["form"].errors["action"]


def test_filter_by_actor_email(team, client_for, history):
    client = client_for(team.owner.user)
    admin_email = team.admin.user.email

    assert shown(client.get(URL, {"actor": admin_email.upper()})) == ["invitation.created"]
    assert shown(client.get(URL, {"actor": "nobody-like-this"})) == []


def test_filter_by_dates_includes_both_days(team, client_for):
    noon = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    for days_ago, action in [(10, "org.created"), (5, "org.renamed"), (1, "member.left")]:
        record_at(noon - timedelta(days=days_ago), action=action, organization=team.organization)
    client = client_for(team.owner.user)

    def day(days_ago: int) -> str:
        return (noon - timedelta(days=days_ago)).date().isoformat()

    assert shown(client.get(URL, {"since": day(5), "until": day(5)})) == ["org.renamed"]
    assert shown(client.get(URL, {"since": day(10), "until": day(2)})) == [
        "org.renamed",
        "org.created",
    ]
    assert shown(client.get(URL, {"since": day(4)})) == ["member.left"]
    assert shown(client.get(URL, {"until": day(6)})) == ["org.created"]


def test_an_end_before_the_start_is_explained(team, client_for, history):
    response = client_for(team.owner.user).get(URL, {"since": "2026-05-02", "until": "2026-05-01"})

    assert response.status_code == 400
    assert "The end date is before the start date." in response.content.decode()


def test_fifty_per_page_and_the_filters_stay_in_the_page_links(team, client_for):
    for n in range(60):
        audit_record(action="org.renamed", organization=team.organization, detail={"n": n})
    audit_record(action="member.left", organization=team.organization)
    client = client_for(team.owner.user)

    first = client.get(URL, {"action": "org"})
    assert len(first.context["entries"]) == 50
    assert first.context["entries"][0].detail == {"n": 59}
    assert "?action=org&amp;page=2" in first.content.decode()

    second = client.get(URL, {"action": "org", "page": 2})
    assert [e.detail["n"] for e in second.context["entries"]] == list(range(9, -1, -1))
    assert "Page 2 of 2" in second.content.decode()

    assert len(client.get(URL, {"action": "org", "page": "999"}).context["entries"]) == 10


def test_the_number_of_queries_does_not_grow_with_the_entries(team, client_for):
    client = client_for(team.owner.user)

    def queries_for_a_page() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL).status_code == 200
        return len(queries)

    audit_record(action="org.renamed", organization=team.organization, actor=team.owner)
    queries_for_a_page()  # the first visit remembers the organization in the session (a write)
    one = queries_for_a_page()
    for _ in range(49):
        audit_record(action="org.renamed", organization=team.organization, actor=team.owner)

    assert queries_for_a_page() == one


@pytest.mark.parametrize(
    "params",
    [
        {"until": "9999-12-31"},
        {"since": "9999-12-31"},
        {"since": "0001-01-01", "until": "9999-12-31"},
    ],
)
def test_a_day_too_far_for_the_calendar_is_a_400_with_the_field_error(team, client_for, params):
    response = client_for(team.owner.user).get(URL, params)

    assert response.status_code == 400
    assert "Give a day up to 9999-12-30." in response.content.decode()
