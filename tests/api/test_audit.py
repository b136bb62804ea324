"""/audit-log/: the organization's audit log for owners and admins, with the page's filters."""

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.audit.services import audit_record
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db


def test_the_log_shows_what_was_done_through_the_api_too(team, api_as, ssh_key):
    api = api_as(team.admin)
    api.patch("/organization/", {"name": "Acme Labs"})

    body = api.get("/audit-log/").json()

    entry = body["results"][0]
    assert entry["action"] == "org.renamed" and entry["action_label"] == "Organization renamed"
    assert entry["actor_kind"] == "api_token" and entry["actor"] == "test"
    assert entry["detail"] == {"from": "Acme AI", "to": "Acme Labs"}
    assert entry["ip"] == "127.0.0.1"


def test_filters(team, api_as):
    old = timezone.now() - timedelta(days=40)
    audit_record(action="member.removed", organization=team.organization, actor=team.owner)
    audit_record(action="member.left", organization=team.organization, actor=team.viewer)
    audit_record(action="invitation.created", organization=team.organization, actor=team.owner)
    api = api_as(team.owner)

    def actions(**params):
        return [e["action"] for e in api.get("/audit-log/", params).json()["results"]]

    assert set(actions(action="member")) == {"member.removed", "member.left"}
    assert actions(action="member.left") == ["member.left"]
    assert set(actions(actor=team.viewer.user.email[:8])) >= {"member.left"}
    assert actions(until=old.date().isoformat()) == []
    assert len(actions(since=timezone.now().date().isoformat())) >= 3


@pytest.mark.parametrize(
    "params",
    [
        {"action": "rocket.launched"},
        {"since": "yesterday"},
        {"until": "9999-12-31"},
        {"since": "2026-05-02", "until": "2026-05-01"},
        {"page": "0"},
    ],
)
def test_bad_filters_are_400(team, api_as, params):
    assert_error(api_as(team.owner).get("/audit-log/", params), 400)


@pytest.mark.parametrize("role", ["member", "billing", "viewer"])
def test_owners_and_admins_only(team, api_as, role):
    assert_error(api_as(team.by_role(role)).get("/audit-log/"), 403, "forbidden")


def test_only_the_tokens_organization(team, outsider, api_as):
    audit_record(action="org.renamed", organization=outsider.organization, actor=outsider)
    entries = api_as(team.owner).get("/audit-log/").json()["results"]
    assert all(e["action"] != "org.renamed" for e in entries)
