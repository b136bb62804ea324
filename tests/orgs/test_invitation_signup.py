"""Someone invited without an account signs up from the link, or logs in from it."""

import re

import pytest

from portal.accounts.models import User
from portal.orgs.models import Organization
from tests.accounts.helpers import mails_to
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

PASSPHRASE = "a-long-and-unusual-passphrase"


def _email_input(body: str) -> str:
    match = re.search(r'<input[^>]*name="email"[^>]*>', body)
    assert match, "no e-mail field"
    return match.group(0)


def test_the_sign_up_form_names_the_organization_and_fixes_the_invited_address(
    client, team, invite
):
    _, token = invite(email="newcomer@example.com", role="viewer")
    client.get(f"/invitations/{token}/")

    body = client.get("/accounts/signup/").content.decode()

    assert "Join Acme AI" in body
    assert "as <strong>viewer</strong>" in body
    assert 'value="newcomer@example.com"' in body
    assert "disabled" in _email_input(body)
    assert 'name="organization_name"' not in body


def test_a_new_person_signs_up_from_the_link_and_is_in_the_organization(client, team, invite):
    _, token = invite(email="newcomer@example.com", role="viewer")
    client.get(f"/invitations/{token}/")

    response = client.post(
        "/accounts/signup/",
        # A changed address in the post is ignored: the invited one is fixed.
        {"email": "someone-else@example.com", "password1": PASSPHRASE, "password2": PASSPHRASE},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == "/o/acme/"
    assert "Welcome to Acme AI. Your role is Viewer." in response.content.decode()
    newcomer = User.objects.get(email="newcomer@example.com")
    assert [m.organization.slug for m in newcomer.memberships.all()] == ["acme"]
    assert newcomer.emailaddress_set.get().verified  # the link came to that address
    assert not User.objects.filter(email="someone-else@example.com").exists()
    assert mails_to("newcomer@example.com") == []  # no confirmation mail to click through


def test_sign_up_without_an_invitation_still_names_an_organization(client, db):
    body = client.get("/accounts/signup/").content.decode()
    assert 'name="organization_name"' in body
    assert "disabled" not in _email_input(body)


def test_signing_up_from_an_invitation_creates_no_personal_organization(client, team, invite):
    _, token = invite(email="newcomer@example.com")
    client.get(f"/invitations/{token}/")

    client.post(
        "/accounts/signup/",
        {
            "email": "newcomer@example.com",
            "password1": PASSPHRASE,
            "password2": PASSPHRASE,
            "organization_name": "My Own",
        },
    )

    assert User.objects.filter(email="newcomer@example.com").exists()
    assert list(Organization.objects.values_list("slug", flat=True)) == ["acme"]


def test_someone_with_an_account_logs_in_from_the_link_and_lands_on_the_accept_page(client, invite):
    existing = UserFactory(email="newcomer@example.com")
    _, token = invite(email=existing.email)
    client.get(f"/invitations/{token}/")

    response = client.post("/accounts/login/", {"login": existing.email, "password": PASSWORD})

    assert response["Location"] == f"/invitations/{token}/"


def test_an_invitation_withdrawn_before_sign_up_makes_no_membership(client, team, invite):
    invitation, token = invite(email="newcomer@example.com")
    client.get(f"/invitations/{token}/")
    invitation.revoked_at = invitation.created_at
    invitation.save(update_fields=["revoked_at"])

    body = client.get("/accounts/signup/").content.decode()

    assert "Join Acme AI" not in body
    assert 'name="organization_name"' in body
