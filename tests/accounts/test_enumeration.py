"""Sign-up, password reset and adding an e-mail say the same whether an address is registered.

allauth's ACCOUNT_PREVENT_ENUMERATION: the page answers as for a new address, and the owner of
an address that is already registered gets a mail instead (through the outbox, like every
allauth mail), so nobody learns from the page which addresses have accounts.
"""

import re

import pytest

from portal.accounts.models import User
from portal.orgs.models import Organization
from tests.accounts.helpers import mails_to
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSPHRASE = "a-long-and-unusual-passphrase"


def sign_up(client, email):
    data = {"email": email, "password1": PASSPHRASE, "password2": PASSPHRASE}
    return client.post("/accounts/signup/", {**data, "organization_name": "Probe"}, follow=True)


def page_text(response, email: str) -> str:
    """The page as a visitor reads it, with the address typed made neutral."""
    text = response.content.decode().replace(email, "ADDRESS")
    return re.sub(r'csrf[a-z_]*"?[:=] ?"?[A-Za-z0-9]+', "CSRF", text, flags=re.IGNORECASE)


def test_signing_up_with_a_registered_address_looks_like_any_sign_up(client, django_user_model):
    existing = UserFactory(email="ada@example.com")
    fresh = sign_up(client, "grace@example.com")
    client.logout()
    client.cookies.clear()

    taken = sign_up(client, "ada@example.com")

    assert taken.redirect_chain == fresh.redirect_chain
    assert taken.status_code == fresh.status_code == 200
    assert "already" not in taken.content.decode().lower()
    assert User.objects.filter(email="ada@example.com").get() == existing
    assert not Organization.objects.filter(memberships__user=existing).exists()
    [notice] = mails_to("ada@example.com")
    assert "You already have a Backfill account" in notice.subject


def test_a_password_reset_for_an_unknown_address_looks_like_any_reset(client):
    UserFactory(email="ada@example.com")

    known = client.post("/accounts/password/reset/", {"email": "ada@example.com"}, follow=True)
    unknown = client.post("/accounts/password/reset/", {"email": "nobody@example.com"}, follow=True)

    assert known.redirect_chain == unknown.redirect_chain
    assert page_text(known, "ada@example.com") == page_text(unknown, "nobody@example.com")
    [notice] = mails_to("nobody@example.com")
    assert "No Backfill account uses this address" in notice.subject


def test_adding_an_address_of_another_account_looks_like_adding_any_address(client_for):
    UserFactory(email="taken@example.com")
    user = UserFactory(email="ada@example.com")
    client = client_for(user)

    fresh = client.post("/accounts/email/", {"email": "new@example.com", "action_add": ""})
    taken = client.post("/accounts/email/", {"email": "taken@example.com", "action_add": ""})

    assert taken.status_code == fresh.status_code == 302
    assert taken["Location"] == fresh["Location"]
    assert not user.emailaddress_set.filter(email="taken@example.com", verified=True).exists()
    assert mails_to("taken@example.com")  # its owner hears of it instead
