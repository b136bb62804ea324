"""Someone invited without an account signs up from the link, or logs in from it."""

import pytest

from portal.accounts.models import User
from portal.orgs.models import Organization
from tests.accounts.helpers import link_in, mails_to
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

PASSPHRASE = "a-long-and-unusual-passphrase"


def test_a_new_person_signs_up_verifies_and_lands_on_the_accept_page(client, team, invite):
    _, token = invite(email="newcomer@example.com", role="viewer")
    client.get(f"/invitations/{token}/")
    client.post(
        "/accounts/signup/",
        {"email": "newcomer@example.com", "password1": PASSPHRASE, "password2": PASSPHRASE},
    )
    [message] = mails_to("newcomer@example.com")

    response = client.post(link_in(message, "/accounts/confirm-email/"), follow=True)

    assert response.redirect_chain[-1][0] == f"/invitations/{token}/"
    assert "Accept invitation" in response.content.decode()
    assert client.post(f"/invitations/{token}/")["Location"] == "/o/acme/"
    newcomer = User.objects.get(email="newcomer@example.com")
    assert [m.organization.slug for m in newcomer.memberships.all()] == ["acme"]


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
