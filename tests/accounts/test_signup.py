"""Signing up with an e-mail address and a password at /accounts/signup/."""

import pytest
from django.core import mail

from portal.accounts.models import User
from portal.orgs.models import Organization
from tests.accounts.helpers import link_in, mails_to
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSPHRASE = "a-long-and-unusual-passphrase"


def sign_up(client, **fields):
    data = {"email": "ada@example.com", "password1": PASSPHRASE, "password2": PASSPHRASE}
    return client.post("/accounts/signup/", {**data, **fields})


def test_signing_up_creates_an_unverified_user_and_asks_them_to_check_their_mail(client):
    response = sign_up(client, full_name="Ada Lovelace")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    user = User.objects.get(email="ada@example.com")
    assert user.full_name == "Ada Lovelace"
    assert not user.emailaddress_set.get().verified
    assert "_auth_user_id" not in client.session


def test_signing_up_sends_a_verification_link_to_the_address(client):
    sign_up(client)

    [message] = mails_to("ada@example.com")
    assert link_in(message, "/accounts/confirm-email/")


def test_the_first_organization_is_named_as_typed_and_owned_by_the_new_user(client):
    sign_up(client, organization_name="Analytical Engines")

    organization = Organization.objects.get(name="Analytical Engines")
    assert organization.slug == "analytical-engines"
    [membership] = organization.memberships.all()
    assert (membership.user.email, membership.role) == ("ada@example.com", "owner")


def test_without_an_organization_name_it_is_named_after_the_person(client):
    sign_up(client, full_name="Ada Lovelace")

    assert User.objects.get().organizations.get().name == "Ada Lovelace's organization"


def test_without_any_name_the_organization_is_named_after_the_address(client):
    sign_up(client)

    assert User.objects.get().organizations.get().name == "ada's organization"


def test_an_address_that_already_has_an_account_gets_a_mail_not_a_second_account(client):
    """The page answers as for any sign-up (tests/accounts/test_enumeration.py); the owner
    of the address is told by mail."""
    existing = UserFactory(email="ada@example.com")

    response = sign_up(client, organization_name="Second Try")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert list(User.objects.all()) == [existing]
    assert not Organization.objects.exists()
    [message] = mails_to("ada@example.com")
    assert "You already have a Backfill account" in message.subject


@pytest.mark.parametrize(
    ("password", "message"),
    [("password123", "This password is too common."), ("Xq7!wz", "at least 10 characters")],
    ids=["common", "short"],
)
def test_a_weak_password_is_refused_with_a_message_and_creates_nothing(client, password, message):
    response = sign_up(client, password1=password, password2=password)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not User.objects.exists()
    assert not Organization.objects.exists()
    assert mail.outbox == []
