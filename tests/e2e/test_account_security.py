"""Account security in the browser: a forgotten password reset by the mailed link, and
two-factor authentication turned on with an authenticator app, then a sign-in completed with a
recovery code (the phone is lost). Keyboard only where a form is filled; axe-core on each page.
"""

import re

import pytest
from playwright.sync_api import expect

from tests.accounts.helpers import totp_code
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "a-new-and-unusual-passphrase"


def test_password_reset_by_the_mailed_link(page, live_server, smtp_sink, team, a11y):
    user = team.member.user
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_role("link", name=re.compile("Forgot", re.I)).click()
    a11y(page)
    # Keyboard alone: type the address, Enter submits.
    page.get_by_label(re.compile("e-?mail", re.I)).fill(user.email)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile("password", re.I))).to_be_visible()
    a11y(page)

    mail = smtp_sink.wait_for(to=user.email)
    page.goto(smtp_sink.first_link(mail, contains="/accounts/password/reset/key/"))
    a11y(page)
    page.get_by_label("New Password", exact=False).first.fill(NEW_PASSWORD)
    page.get_by_label(re.compile("again", re.I)).fill(NEW_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_text(re.compile("password is now changed", re.I))).to_be_visible()
    a11y(page)

    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label(re.compile("e-?mail", re.I)).fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)  # the old one no longer works
    page.keyboard.press("Enter")
    expect(page.get_by_text(re.compile("not correct", re.I))).to_be_visible()
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/o/acme/$"))


def test_two_factor_set_up_then_sign_in_with_a_recovery_code(page, live_server, login, a11y):
    user = UserFactory(email="careful@example.com")
    login(page, user)
    page.goto(f"{live_server.url}/accounts/2fa/")
    a11y(page)
    page.goto(f"{live_server.url}/accounts/2fa/totp/activate/")
    if page.get_by_label("Password").count():  # allauth asks for the password first
        page.get_by_label("Password").fill(PASSWORD)
        page.keyboard.press("Enter")
    secret = page.locator("#authenticator_secret").input_value()
    a11y(page)
    page.get_by_label(re.compile("code", re.I)).fill(totp_code(secret))
    page.keyboard.press("Enter")

    expect(page).to_have_url(re.compile(r"/accounts/2fa/recovery-codes/"))
    a11y(page)
    codes = page.locator("#recovery_codes").input_value().split()
    assert len(codes) >= 5, codes

    page.get_by_test_id("logout").click()
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label(re.compile("e-?mail", re.I)).fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/accounts/2fa/authenticate/"))
    a11y(page)
    page.get_by_label(re.compile("code", re.I)).fill(codes[0])
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/dashboard/|/o/|/orgs/"))
    unused = user.authenticator_set.get(type="recovery_codes").wrap().get_unused_codes()
    assert codes[0] not in unused  # a recovery code works once
