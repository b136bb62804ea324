"""/staff/mail/: operators read the development mail sink (a Maildir) in the browser."""

import mailbox
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from django.utils import timezone

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sunk_key(settings, tmp_path):
    """One message in a Maildir that MAIL_SINK_DIR points at; returns its key."""
    message = EmailMessage()
    message["From"] = "Backfill <no-reply@backfill.localhost>"
    message["To"] = "ada@example.com"
    message["Subject"] = "[Backfill] Please Confirm Your Email Address"
    message["Date"] = format_datetime(timezone.now())
    message.set_content("Open http://testserver/accounts/confirm-email/abc/ to confirm.")
    settings.MAIL_SINK_DIR = tmp_path / "mail"
    return mailbox.Maildir(settings.MAIL_SINK_DIR).add(message)


@pytest.fixture
def staff_client(client_for):
    return client_for(UserFactory(is_staff=True))


def test_staff_see_the_caught_messages(staff_client, sunk_key):
    page = staff_client.get("/staff/mail/").content.decode()

    assert "[Backfill] Please Confirm Your Email Address" in page
    assert "to ada@example.com" in page


def test_staff_open_a_message_to_read_it(staff_client, sunk_key):
    page = staff_client.get(f"/staff/mail/?m={sunk_key}").content.decode()

    assert "http://testserver/accounts/confirm-email/abc/" in page


def test_a_message_that_is_not_there_is_not_found(staff_client, sunk_key):
    assert staff_client.get("/staff/mail/?m=nope").status_code == 404


def test_an_empty_sink_says_so(staff_client, settings, tmp_path):
    settings.MAIL_SINK_DIR = tmp_path / "never-created"

    assert "No mail yet" in staff_client.get("/staff/mail/").content.decode()


def test_customers_cannot_read_the_sink(client_for, sunk_key):
    response = client_for(UserFactory()).get("/staff/mail/", follow=True)

    assert response.status_code == 403
    assert "Please Confirm" not in response.content.decode()


def test_anonymous_visitors_are_sent_to_log_in(client, sunk_key):
    response = client.get("/staff/mail/", follow=True)

    assert response.redirect_chain[-1][0] == "/accounts/login/?next=%2Fstaff%2Fmail%2F"
