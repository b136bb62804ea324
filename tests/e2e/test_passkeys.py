"""Passkeys in Chromium with its virtual authenticator (the DevTools protocol's WebAuthn domain
through Playwright's CDP session): a person registers a passkey, signs in with it alone (no
password), and it serves as the second factor after a password too. The virtual authenticator
keeps real keys: allauth checks real signatures (fido2) against the stored credential.
"""

import pytest
from allauth.mfa.models import Authenticator
from playwright.sync_api import expect

from portal.accounts.models import User
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def virtual_authenticator(page) -> dict:
    """A platform authenticator that holds resident keys and verifies the user by itself."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    created = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return {"cdp": cdp, "id": created["authenticatorId"]}


@pytest.fixture
def person(db):
    user = UserFactory(email="pat@example.com")
    lab = OrganizationFactory(name="Pat's Lab", slug="pats-lab")
    MembershipFactory(organization=lab, user=user)
    return user


def test_register_a_passkey_then_sign_in_with_it_alone_and_as_second_factor(
    page, live_server, person, login
):
    authenticator = virtual_authenticator(page)
    base = live_server.url

    # Register: the two-factor page, "add a passkey", the browser's WebAuthn ceremony.
    login(page, person)
    page.goto(f"{base}/accounts/2fa/webauthn/add/")
    if "/accounts/reauthenticate/" in page.url:  # allauth asks for the password again
        page.fill("input[name=password]", PASSWORD)
        page.get_by_role("button", name="Confirm").click()
    page.get_by_label("Name").fill("Laptop")
    page.get_by_label("Passwordless").check()
    page.get_by_role("button", name="Add", exact=True).click()
    page.wait_for_url(lambda url: "/webauthn/add/" not in url, timeout=10_000)
    expect(page.get_by_text("Security key added.")).to_be_visible()
    keys = Authenticator.objects.filter(user=person, type=Authenticator.Type.WEBAUTHN)
    assert keys.count() == 1
    credentials = authenticator["cdp"].send(
        "WebAuthn.getCredentials", {"authenticatorId": authenticator["id"]}
    )["credentials"]
    assert len(credentials) == 1 and credentials[0]["isResidentCredential"]

    # Sign out, then in with the passkey alone: no e-mail, no password.
    page.get_by_test_id("logout").click()
    page.goto(f"{base}/accounts/login/")
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url(lambda url: "/accounts/login" not in url, timeout=10_000)
    expect(page.get_by_text("Pat's Lab").first).to_be_visible()

    # And as the second factor after the password.
    page.get_by_test_id("logout").click()
    login(page, person, PASSWORD)
    expect(page).to_have_url(f"{base}/accounts/2fa/authenticate/")
    page.get_by_role("button", name="Use a security key").click()
    page.wait_for_url(lambda url: "/accounts/2fa/" not in url, timeout=10_000)
    expect(page.get_by_text("Pat's Lab").first).to_be_visible()
    assert Authenticator.objects.get(pk=keys.get().pk).last_used_at is not None
    assert User.objects.get(pk=person.pk).last_login is not None


def test_a_passkey_alone_is_refused_where_the_organization_requires_sso(
    page, live_server, person, login
):
    from allauth.socialaccount.models import SocialApp

    from portal.sso.models import IdentityProvider

    virtual_authenticator(page)
    base = live_server.url
    login(page, person)
    page.goto(f"{base}/accounts/2fa/webauthn/add/")
    if "/accounts/reauthenticate/" in page.url:
        page.fill("input[name=password]", PASSWORD)
        page.get_by_role("button", name="Confirm").click()
    page.get_by_label("Name").fill("Laptop")
    page.get_by_label("Passwordless").check()
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_text("Security key added.")).to_be_visible()
    page.get_by_test_id("logout").click()
    lab = person.memberships.get().organization
    app = SocialApp.objects.create(
        provider="openid_connect", provider_id="org-pats-lab", name="Lab ID", client_id="x"
    )
    IdentityProvider.objects.create(
        organization=lab,
        app=app,
        name="Lab ID",
        issuer="https://id.lab.example",
        authorization_endpoint="https://id.lab.example/authorize",
        required=True,
    )

    page.goto(f"{base}/accounts/login/")
    page.get_by_role("button", name="Sign in with a passkey").click()

    expect(page.get_by_text("Pat's Lab requires signing in through Lab ID")).to_be_visible()
    page.goto(f"{base}/dashboard/")
    assert "/accounts/login/" in page.url  # not signed in
