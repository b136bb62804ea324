"""An owner invites a colleague who has no account; the colleague follows the mailed link, signs
up with the address filled in and fixed, and is in the organization: no organization of their
own to name, no confirmation mail to click through. axe-core checks each page on the way.
"""

import os
import re

import pytest
from playwright.sync_api import expect

from portal.accounts.models import User

SHOTS = os.environ.get("E2E_SCREENSHOTS", "")  # a directory: pages saved there to look at

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_invitation_accepted_by_a_new_person(
    page, browser, live_server, smtp_sink, login, team, a11y
):
    login(page, team.owner.user)
    page.goto(f"{live_server.url}/o/acme/members/")
    a11y(page)
    invite_form = page.get_by_test_id("invite-form")
    invite_form.get_by_label("E-mail address").fill("grace@example.com")
    invite_form.get_by_label("Role").select_option("viewer")
    invite_form.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_text("grace@example.com").first).to_be_visible()

    mail = smtp_sink.wait_for(to="grace@example.com")
    link = smtp_sink.first_link(mail, contains="/invitations/")

    newcomer = browser.new_context(viewport={"width": 390, "height": 800}).new_page()
    newcomer.goto(link)
    expect(newcomer.get_by_role("heading", name="Join Acme AI")).to_be_visible()
    a11y(newcomer)
    newcomer.get_by_role("link", name="Create an account").click()

    expect(newcomer.get_by_test_id("joining")).to_contain_text("to Acme AI as viewer")
    email = newcomer.get_by_label("Email")
    expect(email).to_have_value("grace@example.com")
    expect(email).to_be_disabled()
    expect(newcomer.locator("input[name=organization_name]")).to_have_count(0)
    a11y(newcomer)
    _shoot(newcomer, "invitation-signup")
    newcomer.get_by_label("Your name").fill("Grace Hopper")
    newcomer.get_by_label("Password", exact=True).fill("a-long-and-unusual-passphrase")
    newcomer.get_by_label("Password (again)").fill("a-long-and-unusual-passphrase")
    newcomer.get_by_role("button", name="Join Acme AI").click()

    expect(newcomer).to_have_url(re.compile(r"/o/acme/$"))
    expect(newcomer.get_by_text("Welcome to Acme AI. Your role is Viewer.")).to_be_visible()
    a11y(newcomer)
    _shoot(newcomer, "invitation-joined")
    grace = User.objects.get(email="grace@example.com")
    assert grace.full_name == "Grace Hopper"
    assert [m.organization.slug for m in grace.memberships.all()] == ["acme"]
    newcomer.context.close()


def _shoot(page, name: str) -> None:
    if SHOTS:
        for width in (1280, 390):
            page.set_viewport_size({"width": width, "height": 800})
            page.screenshot(path=f"{SHOTS}/{name}-{width}.png", full_page=True)
