"""Changing the e-mail address at /accounts/email/: the new address must be verified first."""

import pytest

from tests.accounts.helpers import link_in, mails_to
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(client_for):
    user = UserFactory(email="ada@example.com")
    client_for(user)
    return user


def test_adding_an_address_sends_it_a_verification_mail_and_keeps_the_old_login(client, user):
    response = client.post("/accounts/email/", {"email": "ada@new.example", "action_add": ""})

    assert response.status_code == 302
    assert not user.emailaddress_set.get(email="ada@new.example").verified
    [message] = mails_to("ada@new.example")
    assert link_in(message, "/accounts/confirm-email/")
    user.refresh_from_db()
    assert user.email == "ada@example.com"


def test_verifying_the_new_address_makes_it_the_login(client, user):
    client.post("/accounts/email/", {"email": "ada@new.example", "action_add": ""})
    [message] = mails_to("ada@new.example")

    client.post(link_in(message, "/accounts/confirm-email/"))

    user.refresh_from_db()
    assert user.email == "ada@new.example"
    assert user.emailaddress_set.get(primary=True).email == "ada@new.example"
