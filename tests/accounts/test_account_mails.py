"""allauth's account mails in Backfill's words: subject, text and HTML, with the support address."""

import pytest
from allauth.account.models import EmailAddress
from allauth.core import context as allauth_context
from django.core import mail
from django.core.cache import cache
from django.test import RequestFactory

from portal.accounts.adapter import AccountAdapter
from tests.accounts.helpers import link_in, mails_to
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

STOCK_WORDING = (
    "Hello from",
    "Thank you for using",
    "is an e-mail address for user",
    "Password Reset",
)
ODD_NAME = """O'Brien & "Sons" <Labs>"""

# Every mail allauth (accounts, two-factor, single sign-on) may send, with what it says.
PREFIXES = {
    "account/email/email_confirmation_signup": "Confirm your e-mail address",
    "account/email/email_confirmation": "Confirm ",
    "account/email/password_reset_key": "Reset your password",
    "account/email/unknown_account": "No Backfill account uses this address",
    "account/email/account_already_exists": "You already have a Backfill account",
    "account/email/email_changed": "Your e-mail address was changed",
    "account/email/email_confirm": "E-mail address confirmed",
    "account/email/email_deleted": "An e-mail address was removed",
    "account/email/password_changed": "Your password was changed",
    "account/email/password_set": "A password was set",
    "account/email/password_reset": "Your password was reset",
    "account/email/login_code": "Your sign-in code",
    "account/email/password_reset_code": "Your password reset code",
    "mfa/email/totp_activated": "Two-factor authentication turned on",
    "mfa/email/totp_deactivated": "Authenticator app removed",
    "mfa/email/recovery_codes_generated": "New recovery codes",
    "mfa/email/webauthn_added": "Passkey or security key added",
    "mfa/email/webauthn_removed": "Passkey or security key removed",
    "socialaccount/email/account_connected": "Single sign-on connected",
    "socialaccount/email/account_disconnected": "Single sign-on disconnected",
}


class _Provider:
    name = ODD_NAME


@pytest.mark.parametrize("prefix", PREFIXES)
def test_every_account_mail_is_in_backfills_words_with_text_and_html(prefix):
    user = UserFactory(full_name=ODD_NAME, email="ada@example.com")
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="Firefox")
    link = "http://testserver/accounts/some-link/"
    context = {
        "user": user,
        "activate_url": link,
        "password_reset_url": link,
        "signup_url": link,
        "code": "ABC123",
        "from_email": "old@example.com",
        "to_email": "ada@example.com",
        "deleted_email": "old@example.com",
        "provider": _Provider(),
        "ip": "203.0.113.7",
        "user_agent": "Firefox",
    }
    with allauth_context.request_context(request):
        AccountAdapter(request).send_mail(prefix, "ada@example.com", context)

    (message,) = mail.outbox
    assert message.subject.startswith("[Backfill] " + PREFIXES[prefix])
    html = message.alternatives[0][0]
    for part in (message.subject, message.body, html):
        assert not any(stock in part for stock in STOCK_WORDING), part
    assert "support@backfill.localhost" in message.body
    assert "support@backfill.localhost" in html
    assert "&#x27;" not in message.body and "&amp;" not in message.body
    assert f"Hello {ODD_NAME}," in message.body  # the name as written, not escaped
    assert "O&#x27;Brien &amp; &quot;Sons&quot; &lt;Labs&gt;" in html


def test_the_password_reset_mail_reads_as_backfills_and_its_link_works(client):
    user = UserFactory(email="ada@example.com")

    client.post("/accounts/password/reset/", {"email": user.email})

    [message] = mails_to(user.email)
    assert message.subject == "[Backfill] Reset your password"
    assert "We received a request to reset the password" in message.body
    assert "Choose a new password" in message.alternatives[0][0]
    page = client.get(link_in(message, "/accounts/password/reset/key/"), follow=True)
    assert page.status_code == 200


def _sign_up(client, email="ada@example.com"):
    passphrase = "a-long-and-unusual-passphrase"
    return client.post(
        "/accounts/signup/",
        {
            "email": email,
            "password1": passphrase,
            "password2": passphrase,
            "organization_name": "Analytical Engines",
        },
        follow=True,
    )


def test_the_check_your_inbox_page_names_the_address_and_the_support_desk(client):
    page = _sign_up(client).content.decode()

    assert "Check your inbox" in page
    assert "We sent a link to <strong>ada@example.com</strong>" in page
    assert "Send it again" in page
    assert 'href="mailto:support@backfill.localhost"' in page


def test_send_it_again_waits_out_the_cooldown_then_sends_a_second_link(client):
    _sign_up(client)
    assert len(mails_to("ada@example.com")) == 1

    too_soon = client.post("/accounts/verification/resend/", follow=True).content.decode()

    assert "only a few minutes ago" in too_soon
    assert len(mails_to("ada@example.com")) == 1

    cache.clear()  # the cooldown (allauth's rate limit, kept in the cache) is over
    page = client.post("/accounts/verification/resend/", follow=True)

    assert page.redirect_chain[-1][0] == "/accounts/confirm-email/"
    _first, second = mails_to("ada@example.com")
    assert second.subject == "[Backfill] Confirm your e-mail address to finish signing up"
    client.post(link_in(second, "/accounts/confirm-email/"))
    assert EmailAddress.objects.get(email="ada@example.com").verified


def test_send_it_again_without_a_pending_sign_up_sends_nothing(client):
    UserFactory(email="ada@example.com", verified=False)

    page = client.post("/accounts/verification/resend/", follow=True)

    assert page.redirect_chain[-1][0].startswith("/accounts/login/")
    assert mail.outbox == []


def test_send_it_again_only_answers_a_post(client):
    assert client.get("/accounts/verification/resend/").status_code == 405
