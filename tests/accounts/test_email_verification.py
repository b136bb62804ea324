"""Verifying an e-mail address: mandatory before the first login."""

import pytest

from portal.accounts.models import User
from tests.accounts.helpers import link_in, mails_to
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def verification_link(client):
    """Sign up on `client` as ada@example.com and return the link from the verification mail."""
    passphrase = "a-long-and-unusual-passphrase"
    client.post(
        "/accounts/signup/",
        {
            "email": "ada@example.com",
            "password1": passphrase,
            "password2": passphrase,
            "organization_name": "Analytical Engines",
        },
    )
    [message] = mails_to("ada@example.com")
    return link_in(message, "/accounts/confirm-email/")


def test_an_unverified_user_cannot_log_in_and_lands_on_the_verification_sent_page(client, log_in):
    user = UserFactory(verified=False)

    response = log_in(user.email)

    assert response["Location"] == "/accounts/confirm-email/"
    assert client.get("/dashboard/").status_code == 302
    [message] = mails_to(user.email)
    assert link_in(message, "/accounts/confirm-email/")


def test_opening_the_verification_link_asks_for_confirmation_without_verifying(
    client, verification_link
):
    response = client.get(verification_link)

    assert response.status_code == 200
    assert "ada@example.com" in response.content.decode()
    assert not User.objects.get().emailaddress_set.get().verified


def test_confirming_the_link_verifies_and_lands_on_the_dashboard(client, verification_link):
    response = client.post(verification_link, follow=True)

    assert User.objects.get().emailaddress_set.get().verified
    assert [url for url, _ in response.redirect_chain] == ["/dashboard/", "/o/analytical-engines/"]
    assert "You are owner of this organization." in response.content.decode()


def test_a_verified_user_can_then_log_in(client, verification_link, log_in):
    client.post(verification_link)
    client.logout()

    response = log_in("ada@example.com", "a-long-and-unusual-passphrase")

    assert response["Location"] == "/dashboard/"


def test_a_made_up_verification_link_verifies_nothing(client, verification_link):
    page = client.get("/accounts/confirm-email/not-a-real-key/")
    client.post("/accounts/confirm-email/not-a-real-key/")

    assert "expired or is invalid" in page.content.decode()
    assert not User.objects.get().emailaddress_set.get().verified
