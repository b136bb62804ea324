"""Forgotten password: an e-mailed link that lets the user set a new one."""

import pytest

from tests.accounts.helpers import link_in, mails_to
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-brand-new-passphrase"


def reset_link(client, user) -> str:
    client.post("/accounts/password/reset/", {"email": user.email})
    [message] = mails_to(user.email)
    return link_in(message, "/accounts/password/reset/key/")


def test_asking_for_a_reset_mails_a_link_to_the_address(client):
    user = UserFactory()

    response = client.post("/accounts/password/reset/", {"email": user.email})

    assert response["Location"] == "/accounts/password/reset/done/"
    [message] = mails_to(user.email)
    assert link_in(message, "/accounts/password/reset/key/")


def test_the_link_sets_a_new_password_that_logs_in(client, log_in):
    user = UserFactory()
    page = client.get(reset_link(client, user), follow=True)
    form_url = page.redirect_chain[-1][0]

    response = client.post(form_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    assert response["Location"] == "/accounts/password/reset/key/done/"
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert log_in(user.email, NEW_PASSWORD)["Location"] == "/dashboard/"


def test_the_link_works_only_once(client):
    user = UserFactory()
    link = reset_link(client, user)
    form_url = client.get(link, follow=True).redirect_chain[-1][0]
    client.post(form_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    page = client.get(link, follow=True)

    assert "The password reset link was invalid" in page.content.decode()
