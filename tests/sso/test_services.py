"""Single sign-on's rules: the issuer (https, a valid discovery document), domain claims (one
organization each, staff decide), the policy (who may require SSO, when), and the password
sign-in that an organization requiring SSO refuses."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from allauth.socialaccount.models import SocialAccount, SocialApp
from django.urls import reverse

from portal.audit.models import AuditEntry
from portal.lib.errors import ApplicationError
from portal.orgs.models import Membership
from portal.sso import services
from portal.sso.models import ClaimState, DomainClaim, IdentityProvider
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


class FakeIssuer:
    """An http server on 127.0.0.1 answering /.well-known/openid-configuration as told."""

    def __init__(self):
        self.status = 200
        self.body = b"{}"
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the stdlib's name
                self.send_response(issuer.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(issuer.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, document=None, *, status=200, raw=None):
        self.status = status
        self.body = raw if raw is not None else json.dumps(document or {}).encode()

    def document(self, **overrides):
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize/",
            "token_endpoint": f"{self.url}/token/",
            "jwks_uri": f"{self.url}/jwks/",
            "response_types_supported": ["code"],
            **overrides,
        }


@pytest.fixture
def fake_issuer():
    issuer = FakeIssuer()
    yield issuer
    issuer.server.shutdown()


def save(membership, issuer, **overrides):
    return services.identity_provider_save(
        membership=membership,
        **{"name": "Acme Identity", "issuer": issuer, "client_id": "cid", "client_secret": "s"}
        | overrides,
    )


# --- the issuer -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("issuer", "says"),
    [
        ("http://login.acme.test", "must use https"),
        ("https://localhost:8443", "public internet"),
        ("https://10.1.2.3", "public internet"),
        ("https://[::1]", "public internet"),
        ("ftp://login.acme.test", "full URL"),
        ("https://user:pw@login.acme.test", "user name or password"),
        ("login.acme.test", "full URL"),
    ],
)
def test_an_issuer_must_be_https_on_the_public_internet(team, issuer, says):
    with pytest.raises(ApplicationError, match=says) as refused:
        save(team.owner, issuer)
    assert refused.value.field == "issuer"
    assert not IdentityProvider.objects.exists() and not SocialApp.objects.exists()


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ({"status": 404}, "answered 404"),
        ({"raw": b"<html>welcome</html>"}, "JSON discovery document"),
        ({"raw": b"[1, 2]"}, "JSON discovery document"),
        ({"document": {"issuer": "x"}}, "lacks authorization_endpoint"),
    ],
)
def test_an_issuer_without_a_valid_discovery_document_is_refused(
    team, fake_issuer, insecure_issuers, answer, says
):
    fake_issuer.answer(**answer)
    with pytest.raises(ApplicationError, match=says):
        save(team.owner, fake_issuer.url)
    assert not IdentityProvider.objects.exists()


def test_a_document_that_names_another_issuer_is_refused(team, fake_issuer, insecure_issuers):
    fake_issuer.answer(fake_issuer.document(issuer="https://someone-else.test"))
    with pytest.raises(ApplicationError, match="says its issuer is https://someone-else.test"):
        save(team.owner, fake_issuer.url)


def test_an_issuer_that_does_not_answer_is_refused(team, insecure_issuers):
    with pytest.raises(ApplicationError, match="did not answer"):
        save(team.owner, "http://127.0.0.1:9")


def test_endpoints_of_a_https_issuer_must_be_https_too(team, fake_issuer, insecure_issuers):
    fake_issuer.answer(fake_issuer.document())
    provider = save(team.owner, fake_issuer.url)  # tests allow http throughout
    assert provider.app.settings["server_url"] == fake_issuer.url


def test_the_real_provider_is_saved_as_an_allauth_app(team, idp, insecure_issuers):
    provider = save(team.owner, idp.issuer, client_id=idp.client_id)

    app = provider.app
    assert (app.provider, app.provider_id) == ("openid_connect", "org-acme")
    assert app.client_id == idp.client_id and app.secret == "s"
    assert app.settings["oauth_pkce_enabled"] is True
    assert AuditEntry.objects.filter(action="sso.configured").exists()
    # Saved again without a secret: the secret stays.
    save(team.owner, idp.issuer, client_secret="", name="Renamed")
    app.refresh_from_db()
    assert app.secret == "s" and app.name == "Renamed"


@pytest.mark.parametrize("role", ["admin", "member", "billing", "viewer"])
def test_only_owners_configure_sso(team, idp, insecure_issuers, role):
    with pytest.raises(ApplicationError) as refused:
        save(team.by_role(role), idp.issuer)
    assert refused.value.code == "forbidden"
    with pytest.raises(ApplicationError):
        services.domain_claim_create(membership=team.by_role(role), domain="acme.test")


# --- domains --------------------------------------------------------------------------------------


def test_a_domain_claimed_by_another_organization_is_refused(team, outsider):
    services.domain_claim_create(membership=outsider, domain="acme.test")

    with pytest.raises(ApplicationError, match="already claimed by another organization") as e:
        services.domain_claim_create(membership=team.owner, domain="ACME.test")
    assert e.value.code == "domain_taken"


def test_a_rejected_claim_frees_the_domain(team, outsider, staff):
    theirs = services.domain_claim_create(membership=outsider, domain="acme.test")
    services.domain_claim_reject(claim=theirs, by=staff, note="Not theirs.")

    ours = services.domain_claim_create(membership=team.owner, domain="acme.test")
    assert ours.state == ClaimState.PENDING


@pytest.mark.parametrize(
    ("domain", "says"),
    [
        ("gmail.com", "public mail service"),
        ("alice@acme.test", "e-mail domain such as"),
        ("https://acme.test", "e-mail domain such as"),
        ("localhost", "e-mail domain such as"),
        ("acme..test", "e-mail domain such as"),
        ("-acme.test", "e-mail domain such as"),
        ("10.0.0.1", "e-mail domain such as"),
    ],
)
def test_bad_domains_are_refused(team, domain, says):
    with pytest.raises(ApplicationError, match=says):
        services.domain_claim_create(membership=team.owner, domain=domain)


def test_domains_are_kept_lowercase_and_in_ascii(team):
    claim = services.domain_claim_create(membership=team.owner, domain="@Bücher.Example.")
    assert claim.domain == "xn--bcher-kva.example"
    assert claim.dns_name == "_backfill-verification.xn--bcher-kva.example"
    assert claim.dns_value.startswith("backfill-domain-verification=")


def test_staff_verify_claims_not_customers(team, staff):
    claim = services.domain_claim_create(membership=team.owner, domain="acme.test")
    with pytest.raises(ApplicationError):
        services.domain_claim_verify(claim=claim, by=team.owner.user)

    services.domain_claim_verify(claim=claim, by=staff)

    claim.refresh_from_db()
    assert claim.state == ClaimState.VERIFIED and claim.decided_by == staff
    entry = AuditEntry.objects.get(action="sso.domain_verified")
    assert entry.actor_kind == "staff" and entry.organization == team.organization


def test_staff_verify_in_the_admin(team, staff, client):
    claim = services.domain_claim_create(membership=team.owner, domain="acme.test")
    client.force_login(staff)
    changelist = reverse("admin:sso_domainclaim_changelist")

    page = client.get(changelist)
    response = client.post(
        changelist, {"action": "verify", "_selected_action": [claim.pk]}, follow=True
    )

    assert b"_backfill-verification.acme.test" in page.content
    assert response.status_code == 200
    claim.refresh_from_db()
    assert claim.state == ClaimState.VERIFIED


# --- policy and password sign-in ------------------------------------------------------------------


@pytest.fixture
def configured(team, idp, insecure_issuers, staff):
    provider = save(team.owner, idp.issuer, client_id=idp.client_id)
    claim = services.domain_claim_create(membership=team.owner, domain="acme.test")
    return provider, claim


def test_sso_can_be_required_only_with_a_verified_domain_and_an_owner_who_used_it(
    team, configured, staff
):
    provider, claim = configured
    with pytest.raises(ApplicationError, match="verified one of your domains"):
        services.sso_policy_set(membership=team.owner, required=True, default_role="member")
    services.domain_claim_verify(claim=claim, by=staff)
    with pytest.raises(ApplicationError, match="Sign in through Acme Identity once"):
        services.sso_policy_set(membership=team.owner, required=True, default_role="member")
    SocialAccount.objects.create(user=team.owner.user, provider="org-acme", uid="1")

    services.sso_policy_set(membership=team.owner, required=True, default_role="viewer")

    provider.refresh_from_db()
    assert provider.required and provider.default_role == "viewer"
    with pytest.raises(ApplicationError, match="listed roles"):
        services.sso_policy_set(membership=team.owner, required=True, default_role="owner")


def _require(team, configured, staff):
    provider, claim = configured
    services.domain_claim_verify(claim=claim, by=staff)
    SocialAccount.objects.create(user=team.owner.user, provider="org-acme", uid="1")
    return services.sso_policy_set(membership=team.owner, required=True, default_role="member")


def test_password_sign_in_is_refused_naming_the_provider(team, configured, staff, client):
    _require(team, configured, staff)

    response = client.post(
        reverse("account_login"), {"login": team.member.user.email, "password": PASSWORD}
    )

    assert response.status_code == 200  # the form again, with the reason
    assert "Acme AI requires signing in through Acme Identity" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_wrong_password_says_only_that(team, configured, staff, client):
    _require(team, configured, staff)
    response = client.post(
        reverse("account_login"), {"login": team.member.user.email, "password": "wrong-one-1"}
    )
    assert "Acme Identity" not in response.content.decode()


def test_people_of_other_organizations_still_use_passwords(team, outsider, configured, staff):
    _require(team, configured, staff)
    from django.test import Client

    client = Client()
    response = client.post(
        reverse("account_login"), {"login": outsider.user.email, "password": PASSWORD}
    )
    assert response.status_code == 302 and "_auth_user_id" in client.session


def test_removing_the_provider_ends_the_requirement(team, configured, staff, client):
    _require(team, configured, staff)

    services.identity_provider_remove(membership=team.owner)

    assert not IdentityProvider.objects.exists() and not SocialApp.objects.exists()
    response = client.post(
        reverse("account_login"), {"login": team.member.user.email, "password": PASSWORD}
    )
    assert response.status_code == 302


def test_joining_gives_the_default_role_once(team, configured):
    provider, _claim = configured
    provider.default_role = "billing"
    provider.save()
    newcomer = UserFactory(email="newcomer@acme.test")

    joined = services.sso_join(user=newcomer, provider=provider)
    again = services.sso_join(user=newcomer, provider=provider)

    assert joined.role == "billing" and again is None
    assert Membership.objects.filter(user=newcomer, organization=team.organization).count() == 1
    assert AuditEntry.objects.filter(action="member.joined_through_sso").count() == 1


def test_the_settings_page_is_for_owners(team, client_for):
    assert client_for(team.owner.user).get("/o/acme/sso/").status_code == 200
    client = client_for(team.admin.user)
    assert client.get("/o/acme/sso/").status_code == 403
    assert DomainClaim.objects.count() == 0
