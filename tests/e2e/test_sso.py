"""Single sign-on in Chromium, against a real OpenID Connect provider in its own process
(tests/oidc_provider: django-oauth-toolkit, its own SQLite database, on a free port).

An owner adds the provider and claims the domain on the SSO page, staff verify the claim in
the admin, a new person of the domain signs in through the provider (its login page, its
consent page, the callback) and lands in the organization with its default role; the owner
signs in through it too and requires SSO; a member's password sign-in is then refused with a
message naming the provider. Tokens and addresses the portal must refuse (unverified e-mail,
another audience, expired, a bad signature, a domain that is not the organization's) end on a
page saying why, with no account made.
"""

import pytest
from playwright.sync_api import expect

from portal.accounts.models import User
from portal.orgs.models import Membership
from portal.orgs.roles import Role
from portal.sso.models import ClaimState, DomainClaim, IdentityProvider
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from tests.oidc_provider import PASSWORD as IDP_PASSWORD
from tests.sso import conftest as sso_fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

idp = sso_fixtures.idp
insecure_issuers = sso_fixtures.insecure_issuers


@pytest.fixture
def acme(db):
    organization = OrganizationFactory(name="Acme AI", slug="acme")
    owner = MembershipFactory(
        organization=organization, role=Role.OWNER, user=UserFactory(email="olivia@acme.test")
    )
    member = MembershipFactory(
        organization=organization, role=Role.MEMBER, user=UserFactory(email="bob@acme.test")
    )
    staff = UserFactory(email="ops@backfill.example", is_staff=True, is_superuser=True)
    return organization, owner, member, staff


def sign_in_with_sso(page, base_url: str, email: str, idp_user: str) -> None:
    """From the portal's sign-in page, through the provider's login and consent pages."""
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_test_id("sso-link").click()
    page.fill("input[name=email]", email)
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Continue to Acme Identity").click()
    expect(page.get_by_role("heading", name="Acme Identity")).to_be_visible()  # the provider
    page.fill("input[name=username]", idp_user)
    page.fill("input[name=password]", IDP_PASSWORD)
    page.get_by_role("button", name="Sign in to Acme Identity").click()
    expect(page.get_by_text("Authorize Backfill?")).to_be_visible()  # its consent page
    page.click("input[name=allow]")
    page.wait_for_load_state()


def test_configure_verify_sign_in_join_require(
    browser, live_server, idp, insecure_issuers, acme, login
):
    organization, owner, member, staff = acme
    base = live_server.url

    # The owner adds the provider, chooses the role of people who join, claims the domain.
    owner_page = browser.new_context().new_page()
    login(owner_page, owner.user)
    owner_page.goto(f"{base}/o/acme/sso/")
    assert (
        "/accounts/oidc/org-acme/login/callback/"
        in owner_page.get_by_test_id("callback-url").input_value()
    )
    form = owner_page.get_by_test_id("provider-form")
    form.get_by_label("Display name").fill("Acme Identity")
    form.get_by_label("Issuer URL").fill(idp.issuer)
    form.get_by_label("Client ID").fill(idp.client_id)
    form.get_by_label("Client secret").fill(idp.client_secret)
    form.get_by_role("button", name="Add provider").click()
    expect(owner_page.get_by_text("answered with a valid discovery document")).to_be_visible()
    claim_form = owner_page.get_by_test_id("claim-form")
    claim_form.get_by_label("E-mail domain").fill("acme.test")
    claim_form.get_by_role("button", name="Claim").click()
    expect(owner_page.get_by_test_id("claim-acme.test")).to_contain_text("waiting for the operator")
    owner_page.get_by_label("Role of people who join through SSO").select_option("viewer")
    owner_page.get_by_role("button", name="Save policy").click()
    expect(owner_page.get_by_text("The sign-in policy is saved.")).to_be_visible()

    # Staff verify the claim in the admin.
    staff_page = browser.new_context().new_page()
    login(staff_page, staff)
    staff_page.goto(f"{base}/admin/sso/domainclaim/")
    expect(staff_page.get_by_text("_backfill-verification.acme.test")).to_be_visible()
    staff_page.check("input[name=_selected_action]")
    staff_page.select_option("select[name=action]", "verify")
    staff_page.get_by_role("button", name="Go").click()
    expect(staff_page.get_by_text("Verified 1 domain claim(s).")).to_be_visible()
    assert DomainClaim.objects.get(domain="acme.test").state == ClaimState.VERIFIED

    # Someone new of the domain: redirect, the provider's login and consent, the callback;
    # the account is made and joins with the default role.
    alice_page = browser.new_context().new_page()
    sign_in_with_sso(alice_page, base, "alice@acme.test", "alice")
    expect(alice_page).to_have_url(f"{base}/o/acme/")
    expect(alice_page.get_by_role("heading", name="Acme AI").first).to_be_visible()
    alice = User.objects.get(email="alice@acme.test")
    assert alice.full_name == "Alice Example" and not alice.has_usable_password()
    assert Membership.objects.get(user=alice, organization=organization).role == Role.VIEWER
    assert not Membership.objects.filter(user=alice).exclude(organization=organization).exists()

    # The owner signs in through the provider once (their account is connected by its
    # verified address), then requires SSO.
    owner_page.get_by_test_id("logout").click()
    sign_in_with_sso(owner_page, base, "olivia@acme.test", "olivia")
    expect(owner_page).to_have_url(f"{base}/o/acme/")
    owner_page.goto(f"{base}/o/acme/sso/")
    owner_page.get_by_label("Require SSO").check()
    owner_page.get_by_role("button", name="Save policy").click()
    expect(owner_page.get_by_text("Members cannot sign in with a password")).to_be_visible()
    assert IdentityProvider.objects.get(organization=organization).required

    # A member's password sign-in is refused, naming the provider.
    bob_page = browser.new_context().new_page()
    login(bob_page, member.user, PASSWORD)
    expect(
        bob_page.get_by_text("Acme AI requires signing in through Acme Identity")
    ).to_be_visible()
    assert bob_page.url.endswith("/accounts/login/")
    # Through the provider, Bob gets in.
    sign_in_with_sso(bob_page, base, "bob@acme.test", "bob")
    expect(bob_page).to_have_url(f"{base}/o/acme/")


@pytest.fixture
def configured(acme, idp, insecure_issuers):
    from portal.sso import services

    organization, owner, _member, staff = acme
    services.identity_provider_save(
        membership=owner,
        name="Acme Identity",
        issuer=idp.issuer,
        client_id=idp.client_id,
        client_secret=idp.client_secret,
    )
    claim = services.domain_claim_create(membership=owner, domain="acme.test")
    services.domain_claim_verify(claim=claim, by=staff)
    return organization


@pytest.mark.parametrize(
    ("email", "idp_user", "says"),
    [
        ("unverified@acme.test", "unverified", "says your e-mail address unverified@acme.test "
         "is not verified"),
        ("wrongaud@acme.test", "wrongaud", "issued for another application"),
        ("expired@acme.test", "expired", "has expired"),
        ("badsig@acme.test", "badsig", "signature does not match the provider's published keys"),
        ("alice@acme.test", "carol", "carol@elsewhere.test is not an address of a domain "
         "Acme AI has verified"),
    ],
)  # fmt: skip
def test_what_the_portal_refuses_ends_on_a_page_that_says_why(
    browser, live_server, configured, email, idp_user, says
):
    users_before = set(User.objects.values_list("email", flat=True))
    page = browser.new_context().new_page()

    sign_in_with_sso(page, live_server.url, email, idp_user)

    refused = page.get_by_test_id("sso-refused")
    expect(refused).to_be_visible()
    expect(refused).to_contain_text(says)
    expect(page.get_by_text("No account was made")).to_be_visible()
    assert set(User.objects.values_list("email", flat=True)) == users_before
    page.goto(f"{live_server.url}/dashboard/")
    assert "/accounts/login/" in page.url  # not signed in


def test_an_address_no_organization_claims_is_told_to_use_a_password(
    browser, live_server, configured
):
    page = browser.new_context().new_page()
    page.goto(f"{live_server.url}/accounts/sso/")
    page.fill("input[name=email]", "dave@nowhere.test")
    page.get_by_role("button", name="Continue").click()
    expect(
        page.get_by_text("No organization on Backfill signs in with single sign-on")
    ).to_be_visible()
