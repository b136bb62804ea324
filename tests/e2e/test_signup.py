import os
import re

import pytest
from playwright.sync_api import expect

from portal.accounts.models import User

SHOTS = os.environ.get("E2E_SCREENSHOTS", "")  # a directory: pages saved there to look at

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_new_customer_signs_up_verifies_by_email_and_lands_on_the_dashboard(
    page, live_server, smtp_sink
):
    page.goto(f"{live_server.url}/")
    page.get_by_role("link", name="Create an account").click()
    page.fill("input[name=email]", "ada@example.com")
    page.fill("input[name=full_name]", "Ada Lovelace")
    page.fill("input[name=organization_name]", "Analytical Engines")
    page.fill("input[name=password1]", "a-long-and-unusual-passphrase")
    page.fill("input[name=password2]", "a-long-and-unusual-passphrase")
    page.get_by_role("button", name="Sign Up").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    expect(page.get_by_text("We sent a link to ada@example.com")).to_be_visible()
    expect(page.get_by_role("button", name="Send it again")).to_be_visible()
    expect(page.get_by_role("link", name="support@backfill.localhost")).to_be_visible()

    mail = smtp_sink.wait_for(to="ada@example.com", subject_contains="Confirm your e-mail address")
    assert "Welcome to Backfill" in mail.text
    assert "Confirm my e-mail address" in mail.html
    if SHOTS:
        for width in (1280, 390):
            page.set_viewport_size({"width": width, "height": 800})
            page.screenshot(path=f"{SHOTS}/verification-sent-{width}.png", full_page=True)
        page.set_content(mail.html)
        page.screenshot(path=f"{SHOTS}/verification-mail-{width}.png", full_page=True)
    link = smtp_sink.first_link(mail, contains="/accounts/confirm-email/")
    page.goto(link)
    page.get_by_role("button", name="Confirm").click()

    expect(page).to_have_url(re.compile(r"/o/analytical-engines/$"))
    expect(page.get_by_role("heading", name="Analytical Engines")).to_be_visible()
    expect(page.get_by_text("You are owner of this organization.")).to_be_visible()
    assert User.objects.get(email="ada@example.com").emailaddress_set.get().verified
