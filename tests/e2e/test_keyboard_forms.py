"""Forms are usable by keyboard alone: an owner invites a colleague and sets the monthly budget
with Tab, typing, the arrows, Space and Enter, never the mouse; every control they stop on shows
its focus ring, and each page says what was done."""

import re

import pytest
from playwright.sync_api import expect

from portal.billing.models import Budget
from portal.orgs.models import Invitation
from tests.e2e.test_keyboard import FOCUSED, press_until, tab_to

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_invite_a_colleague_with_the_keyboard_alone(page, live_server, login, team, a11y):
    login(page, team.owner.user)
    page.goto(f"{live_server.url}/o/acme/members/")
    form = page.get_by_test_id("invite-form")

    tab_to(page, "[data-testid=invite-form] input[name=email]")
    page.keyboard.type("grace@example.com")
    tab_to(page, "[data-testid=invite-form] select[name=role]")
    press_until(
        page, "ArrowDown", "[data-testid=invite-form] select[name=role]", "e.value === 'billing'"
    )
    tab_to(page, "[data-testid=invite-form] button[type=submit]")
    page.keyboard.press("Enter")

    expect(page.get_by_test_id("invitations")).to_contain_text("grace@example.com")
    expect(
        page.get_by_test_id("invitations").get_by_role("row", name="grace@example.com")
    ).to_contain_text("Billing")
    expect(form.locator("input[name=email]")).to_have_value("")
    invitation = Invitation.objects.get(email="grace@example.com")
    assert (invitation.organization, invitation.role) == (team.organization, "billing")
    a11y(page)


def test_set_a_budget_with_a_hard_limit_with_the_keyboard_alone(
    page, live_server, login, team, a11y
):
    login(page, team.owner.user)
    page.goto(f"{live_server.url}/o/acme/billing/budget/")

    # A mistake first: the error is shown and the focus can go straight back to the field.
    tab_to(page, "[data-testid=budget-form] input[name=amount]")
    page.keyboard.type("lots")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("budget-form").locator(".errorlist")).to_be_visible()

    tab_to(page, "[data-testid=budget-form] input[name=amount]")
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.type("2500")
    tab_to(page, "[data-testid=budget-form] input[name=hard_limit]")
    page.keyboard.press("Space")
    expect(page.locator("input[name=hard_limit]")).to_be_checked()
    tab_to(page, "[data-testid=budget-form] button[type=submit]")
    assert page.evaluate(FOCUSED, "button[type=submit]")
    page.keyboard.press("Enter")

    saved = re.compile(r"The monthly budget is now \$[\d,.]+ with a hard limit\.")
    expect(page.get_by_text(saved)).to_be_visible()
    budget = Budget.objects.get(organization=team.organization)
    assert (budget.amount, budget.hard_limit, budget.stop_instances) == (2500, True, False)
    a11y(page)
