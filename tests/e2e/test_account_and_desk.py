"""In the browser: the notifications page (time zone detected from the browser) and the
operator's support desk (search, the customer page, a staff note)."""

import os

import pytest
from playwright.sync_api import expect

from portal.notifications.models import EmailPreference
from portal.operations.models import StaffNote
from tests.factories import UserFactory
from tests.instances import conftest as instance_fixtures

catalog = instance_fixtures.catalog
quota = instance_fixtures.quota
make_instance = instance_fixtures.make_instance

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHOTS = os.environ.get("E2E_SCREENSHOTS", "")  # a directory: pages saved there to look at


def shoot(page, name: str) -> None:
    if not SHOTS:
        return
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=f"{SHOTS}/{name}-{width}.png", full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})


def test_the_browser_sets_the_time_zone_and_the_person_chooses_their_e_mails(
    browser, live_server, login, a11y, team
):
    context = browser.new_context(timezone_id="Asia/Tokyo", viewport={"width": 1366, "height": 900})
    page = context.new_page()
    user = team.member.user
    login(page, user)
    page.goto(f"{live_server.url}/account/notifications/")
    page.wait_for_load_state("networkidle")
    user.refresh_from_db()
    assert user.time_zone == "Asia/Tokyo"  # sent by the page's script on the first visit

    page.reload()
    expect(page.get_by_label("Time zone")).to_have_value("Asia/Tokyo")
    checkbox = page.get_by_label("An instance is running, or failed to start")
    expect(checkbox).to_be_checked()
    checkbox.uncheck()
    a11y(page, what="notifications page")
    page.get_by_role("button", name="Save").click()
    expect(
        page.get_by_text("Saved. Your e-mail and time zone settings apply from now.")
    ).to_be_visible()
    expect(page.get_by_label("An instance is running, or failed to start")).not_to_be_checked()
    assert EmailPreference.objects.get(user=user).muted == ["instances"]
    shoot(page, "notifications")
    context.close()


def test_the_support_desk_finds_a_customer_and_keeps_a_note(
    page, live_server, login, a11y, team, make_instance
):
    make_instance(state="running", name="trainer", ip="203.0.113.40")
    staff = UserFactory(is_staff=True, is_superuser=True, email="desk@backfill.example")
    login(page, staff)
    page.goto(f"{live_server.url}/admin/")
    page.get_by_label("Find a customer").fill("203.0.113.40")
    page.get_by_role("button", name="Search").first.click()

    expect(page.get_by_role("heading", name="Acme AI")).to_be_visible()
    expect(page.get_by_test_id("instances")).to_contain_text("trainer")
    expect(page.get_by_test_id("members")).to_contain_text(team.owner.user.email)
    page.get_by_label("Only operator staff see these notes.").fill("Called: wants 16 more H100s.")
    page.get_by_role("button", name="Add note").click()
    expect(page.get_by_test_id("staff-notes")).to_contain_text("Called: wants 16 more H100s.")
    expect(page.get_by_test_id("staff-notes")).to_contain_text("desk@backfill.example")
    a11y(page, what="customer page")
    assert StaffNote.objects.get().author_email == "desk@backfill.example"
    shoot(page, "customer")
