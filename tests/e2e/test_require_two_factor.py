"""An owner requires two-factor on the settings page; a member without it is sent to set it up."""

import re

import pytest
from playwright.sync_api import expect

from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_owner_requires_two_factor_and_a_member_is_sent_to_set_it_up(
    page, live_server, login, team, tmp_path_factory
):
    owner = UserFactory(two_factor=True)
    MembershipFactory(organization=team.organization, user=owner, role="owner")
    login(page, owner)
    shots = tmp_path_factory.mktemp("shots")
    page.goto(f"{live_server.url}/o/acme/settings/")
    page.get_by_role("button", name="Require two-factor of every member").click()
    expect(page.get_by_text("Two-factor is required")).to_be_visible()
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(shots / f"settings-{width}.png"), full_page=True)
    page.context.clear_cookies()

    login(page, team.member.user)
    page.goto(f"{live_server.url}/o/acme/instances/")
    expect(page).to_have_url(re.compile(r"/accounts/2fa/"))
    expect(page.get_by_text("Acme AI requires two-factor authentication")).to_be_visible()
    page.screenshot(path=str(shots / "member-sent-to-setup.png"), full_page=True)
    print(shots)
