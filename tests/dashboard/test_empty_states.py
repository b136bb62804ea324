"""Empty states fit the role and the quota: a viewer is not told to invite or launch; an
organization without GPU quota is told to ask for it, not to launch an H100."""

import pytest

from tests.instances.conftest import catalog, quota  # noqa: F401  fixtures

pytestmark = pytest.mark.django_db


def _empty(body: str) -> str:
    start = body.index('data-testid="instances-empty"')
    return body[start : body.index("</div>", body.index("<h3>", start) + 200)]


@pytest.mark.parametrize("url", ["/o/acme/", "/o/acme/instances/"])
def test_an_organization_without_quota_is_told_to_ask_for_it(team, client_for, url):
    body = client_for(team.owner.user).get(url).content.decode()
    empty = _empty(body)
    assert "has no GPU quota yet" in empty
    assert 'href="/o/acme/quotas/requests/new/">Ask for GPU quota' in empty
    assert "Launch your first instance" not in empty


def test_the_dashboard_checklist_asks_for_quota_first(team, client_for):
    body = client_for(team.owner.user).get("/o/acme/").content.decode()
    assert body.index("Ask for GPU quota") < body.index("Launch your first instance")


def test_a_member_without_quota_is_told_who_can_ask_for_it(team, client_for):
    empty = _empty(client_for(team.member.user).get("/o/acme/instances/").content.decode())
    assert "An owner or administrator of the organization can ask for it." in empty
    assert "Ask for GPU quota</a>" not in empty


def test_with_quota_the_empty_state_offers_a_launch(team, client_for, quota):  # noqa: F811
    empty = _empty(client_for(team.member.user).get("/o/acme/instances/").content.decode())
    assert "Launch your first instance" in empty
    assert "quota" not in empty


def test_a_viewer_is_told_neither_to_launch_nor_to_invite(team, client_for, quota):  # noqa: F811
    body = client_for(team.viewer.user).get("/o/acme/").content.decode()
    empty = _empty(body)
    assert "can see them but not launch any" in empty
    assert "Launch" not in empty
    assert "Invite a colleague" not in body
    assert "Ask for GPU quota" not in body


def test_avatars_show_initials_from_the_name(team, client_for):
    team.admin.user.full_name = "Ada  King Lovelace"
    team.admin.user.save(update_fields=["full_name"])
    team.viewer.user.full_name = ""
    team.viewer.user.save(update_fields=["full_name"])
    body = client_for(team.owner.user).get("/o/acme/members/").content.decode()
    assert '<span class="avatar" aria-hidden="true">AL</span>' in body
    viewer_initial = team.viewer.user.email[0].upper()
    assert f'<span class="avatar" aria-hidden="true">{viewer_initial}</span>' in body


def test_a_long_organization_name_is_shown_whole_with_a_title(team, client_for):
    name = "The Extremely Long Named Institute for Large-Scale Machine Learning Research"
    team.organization.name = name
    team.organization.save(update_fields=["name"])
    body = client_for(team.owner.user).get("/o/acme/").content.decode()
    assert f'<summary title="{name}"><span class="org-name">{name}<br>' in body
