"""Writes of single sign-on: the identity provider, domain claims, the policy, and joining.

Owners configure; staff decide claims; a person of a verified domain who signs in through the
provider joins the organization (portal/sso/receivers.py calls `sso_join`).
"""

from __future__ import annotations

import ipaddress
import json
import re
from urllib.parse import urlsplit

from allauth.socialaccount.models import SocialAccount, SocialApp
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.accounts.models import User
from portal.audit.services import audit_record
from portal.lib import safehttp
from portal.lib.errors import ApplicationError
from portal.orgs.models import Membership, Organization
from portal.orgs.roles import Role
from portal.sso.models import (
    DOMAIN_MAX_LENGTH,
    JOIN_ROLES,
    ClaimState,
    DomainClaim,
    IdentityProvider,
    provider_id_for,
)

DISCOVERY_PATH = "/.well-known/openid-configuration"
REQUIRED_METADATA = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
NAME_MAX_LENGTH = 80
# Domains of public mail services: nobody's organization owns them.
PUBLIC_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "web.de",
        "aol.com",
        "mail.com",
        "yandex.ru",
        "qq.com",
    }
)
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _insecure_issuers_allowed() -> bool:
    """Tests run their identity provider over http on 127.0.0.1; nothing else may."""
    return bool(getattr(settings, "SSO_ALLOW_INSECURE_ISSUERS", False))


def _allowed_networks():
    return safehttp.networks(getattr(settings, "OUTBOUND_ALLOWED_NETWORKS", ()))


def _check_owner(membership: Membership) -> None:
    if not membership.can("members.manage"):
        raise ApplicationError(
            "Only owners configure single sign-on for the organization.", code="forbidden"
        )


# --- the identity provider ----------------------------------------------------------------------


def _check_url(url: str, *, field: str, what: str) -> str:
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ApplicationError(f"{what} is not a valid URL.", field=field) from None
    if not host or parts.scheme not in ("https", "http") or parts.query or parts.fragment:
        raise ApplicationError(
            f"{what} must be a full URL such as https://login.example.com.", field=field
        )
    if parts.username or parts.password:
        raise ApplicationError(f"{what} must not contain a user name or password.", field=field)
    if _insecure_issuers_allowed():
        return url
    if parts.scheme != "https":
        raise ApplicationError(
            f"{what} must use https: sign-in tokens never travel over plain http.", field=field
        )
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    inside = host == "localhost" or host.endswith(".localhost")
    inside = inside or bool(literal and not safehttp.is_public(literal))
    if not inside:
        try:  # 2130706433, 0x7f000001, 127.1, or a name that resolves inside
            safehttp.check(url, allow=_allowed_networks())
        except safehttp.Refused:
            inside = True
    if inside:
        raise ApplicationError(
            f"{what} must be on the public internet, not this machine or a private network.",
            field=field,
        )
    return url


def fetch_discovery(issuer: str) -> dict:
    """The issuer's OpenID Connect discovery document, checked, or an ApplicationError that
    says what is wrong with it (in words for the owner who typed the URL)."""
    url = issuer.rstrip("/") + DISCOVERY_PATH
    timeout = getattr(settings, "SSO_DISCOVERY_TIMEOUT", 5)
    try:
        # Through portal.lib.safehttp: the issuer's host resolved once, every address public
        # (or on OUTBOUND_ALLOWED_NETWORKS), the connection made to that address.
        response = safehttp.request(
            "GET",
            url,
            headers={"Accept": "application/json"},
            timeout=(timeout, timeout),
            allow=_allowed_networks(),
        )
    except safehttp.Refused:
        raise ApplicationError(
            "The issuer URL must be on the public internet, not this machine or a private network.",
            field="issuer",
            code="no_discovery",
        ) from None
    except safehttp.Failure:
        raise ApplicationError(
            f"{url} did not answer. Check the issuer URL.", field="issuer", code="no_discovery"
        ) from None
    if response.status != 200:
        raise ApplicationError(
            f"{url} answered {response.status}, not an OpenID Connect discovery document. "
            "Check the issuer URL (it is the part before /.well-known/).",
            field="issuer",
            code="no_discovery",
        )
    try:
        document = json.loads(response.body)
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict):
        raise ApplicationError(
            f"{url} did not answer with a JSON discovery document.",
            field="issuer",
            code="no_discovery",
        )
    missing = [key for key in REQUIRED_METADATA if not isinstance(document.get(key), str)]
    if missing:
        raise ApplicationError(
            f"The discovery document at {url} lacks {', '.join(missing)}.",
            field="issuer",
            code="no_discovery",
        )
    if document["issuer"].rstrip("/") != issuer.rstrip("/"):
        raise ApplicationError(
            f"The discovery document says its issuer is {document['issuer']}, not {issuer}. "
            "Give the issuer exactly as the provider states it.",
            field="issuer",
            code="no_discovery",
        )
    if "code" not in document.get("response_types_supported", ["code"]):
        raise ApplicationError(
            "The provider does not support the authorization code flow (response type code).",
            field="issuer",
            code="no_discovery",
        )
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        _check_url(document[key], field="issuer", what=f"The provider's {key}")
    return document


def identity_provider_save(
    *,
    membership: Membership,
    name: str,
    issuer: str,
    client_id: str,
    client_secret: str = "",
    request=None,
) -> IdentityProvider:
    """Add or change the organization's OpenID Connect provider (the secret stays if empty)."""
    _check_owner(membership)
    organization = membership.organization
    name = " ".join((name or "").split())[:NAME_MAX_LENGTH]
    issuer = _check_url(issuer, field="issuer", what="The issuer URL").rstrip("/")
    client_id = (client_id or "").strip()
    client_secret = (client_secret or "").strip()
    if not client_id or len(client_id) > 191:
        raise ApplicationError("Give the client ID the provider issued.", field="client_id")
    existing = IdentityProvider.objects.filter(organization=organization).first()
    if not client_secret and existing is None:
        raise ApplicationError("Give the client secret the provider issued.", field="client_secret")
    discovery = fetch_discovery(issuer)
    name = name or urlsplit(issuer).hostname or "your identity provider"
    methods = discovery.get("token_endpoint_auth_methods_supported") or []
    app_settings = {
        "server_url": issuer,
        "oauth_pkce_enabled": True,
        "email_authentication": True,
        "token_auth_method": "client_secret_post"
        if "client_secret_post" in methods
        else "client_secret_basic",
    }
    now = timezone.now()
    with transaction.atomic():
        if existing is None:
            app = SocialApp.objects.create(
                provider="openid_connect",
                provider_id=provider_id_for(organization),
                name=name,
                client_id=client_id,
                secret=client_secret,
                settings=app_settings,
            )
            provider = IdentityProvider.objects.create(
                organization=organization,
                app=app,
                name=name,
                issuer=issuer,
                authorization_endpoint=discovery["authorization_endpoint"],
                created_by=membership.user,
                created_at=now,
                updated_at=now,
            )
        else:
            provider = existing
            app = provider.app
            app.name, app.client_id, app.settings = name, client_id, app_settings
            if client_secret:
                app.secret = client_secret
            app.save(update_fields=["name", "client_id", "settings", "secret"])
            provider.name, provider.issuer, provider.updated_at = name, issuer, now
            provider.authorization_endpoint = discovery["authorization_endpoint"]
            provider.save(update_fields=["name", "issuer", "authorization_endpoint", "updated_at"])
        audit_record(
            action="sso.configured",
            organization=organization,
            actor=membership,
            request=request,
            target=provider,
            detail={"issuer": issuer, "client_id": client_id, "name": name},
        )
    return provider


def identity_provider_remove(*, membership: Membership, request=None) -> None:
    """Remove the provider: SSO stops (and is no longer required); accounts stay."""
    _check_owner(membership)
    provider = IdentityProvider.objects.filter(organization=membership.organization).first()
    if provider is None:
        raise ApplicationError("There is no identity provider to remove.", code="not_found")
    with transaction.atomic():
        app = provider.app
        audit_record(
            action="sso.removed",
            organization=membership.organization,
            actor=membership,
            request=request,
            detail={"issuer": provider.issuer, "name": provider.name},
        )
        provider.delete()
        SocialAccount.objects.filter(provider=app.provider_id).delete()
        app.delete()


# --- domains ------------------------------------------------------------------------------------


def clean_domain(domain: str) -> str:
    domain = (domain or "").strip().lower().rstrip(".")
    if domain.startswith("@"):
        domain = domain[1:]
    message = "Give an e-mail domain such as example.com (no address, no URL)."
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ApplicationError(message, field="domain") from None
    labels = domain.split(".")
    if (
        len(domain) > DOMAIN_MAX_LENGTH
        or len(labels) < 2
        or not all(_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ApplicationError(message, field="domain")
    return domain


def domain_claim_create(*, membership: Membership, domain: str, request=None) -> DomainClaim:
    _check_owner(membership)
    domain = clean_domain(domain)
    if domain in PUBLIC_MAIL_DOMAINS:
        raise ApplicationError(
            f"{domain} is a public mail service; claim your organization's own domain.",
            field="domain",
        )
    live = DomainClaim.objects.exclude(state=ClaimState.REJECTED).filter(domain=domain).first()
    if live is not None:
        if live.organization_id == membership.organization_id:
            raise ApplicationError(f"You have already claimed {domain}.", field="domain")
        raise ApplicationError(
            f"{domain} is already claimed by another organization. If it is yours, write to "
            f"{settings.OPERATOR_EMAIL}.",
            field="domain",
            code="domain_taken",
        )
    try:
        with transaction.atomic():
            claim = DomainClaim.objects.create(
                organization=membership.organization, domain=domain, claimed_by=membership.user
            )
            audit_record(
                action="sso.domain_claimed",
                organization=membership.organization,
                actor=membership,
                request=request,
                target=claim,
                detail={"domain": domain},
            )
    except IntegrityError:
        raise ApplicationError(
            f"{domain} is already claimed by another organization.",
            field="domain",
            code="domain_taken",
        ) from None
    return claim


def domain_claim_remove(*, membership: Membership, claim: DomainClaim, request=None) -> None:
    _check_owner(membership)
    if claim.organization_id != membership.organization_id:
        raise ApplicationError("There is no such domain claim.", code="not_found")
    with transaction.atomic():
        audit_record(
            action="sso.domain_removed",
            organization=membership.organization,
            actor=membership,
            request=request,
            detail={"domain": claim.domain},
        )
        claim.delete()
        organization = membership.organization
        if not organization.domain_claims.filter(state=ClaimState.VERIFIED).exists():
            IdentityProvider.objects.filter(organization=organization).update(required=False)


def _staff(user: User | None) -> User:
    if user is None or not user.is_staff:
        raise ApplicationError("Only operator staff decide domain claims.", code="forbidden")
    return user


def domain_claim_verify(*, claim: DomainClaim, by: User) -> DomainClaim:
    """Staff confirm that the organization owns the domain (see the README for DNS proof)."""
    _staff(by)
    with transaction.atomic():
        claim = DomainClaim.objects.select_for_update().get(pk=claim.pk)
        if claim.state == ClaimState.VERIFIED:
            return claim
        if claim.state == ClaimState.REJECTED:
            raise ApplicationError(
                f"The claim of {claim.domain} was rejected; the owner must claim it again.",
                code="invalid_state",
            )
        claim.state, claim.decided_at, claim.decided_by = ClaimState.VERIFIED, timezone.now(), by
        claim.save(update_fields=["state", "decided_at", "decided_by"])
        audit_record(
            action="sso.domain_verified",
            organization=claim.organization,
            actor=by,
            actor_kind="staff",
            target=claim,
            detail={"domain": claim.domain},
        )
    return claim


def domain_claim_reject(*, claim: DomainClaim, by: User, note: str = "") -> DomainClaim:
    _staff(by)
    with transaction.atomic():
        claim = DomainClaim.objects.select_for_update().get(pk=claim.pk)
        claim.state, claim.decided_at, claim.decided_by = ClaimState.REJECTED, timezone.now(), by
        claim.note = (note or "").strip()[:500]
        claim.save(update_fields=["state", "decided_at", "decided_by", "note"])
        audit_record(
            action="sso.domain_rejected",
            organization=claim.organization,
            actor=by,
            actor_kind="staff",
            target=claim,
            detail={"domain": claim.domain, "note": claim.note},
        )
        organization = claim.organization
        if not organization.domain_claims.filter(state=ClaimState.VERIFIED).exists():
            IdentityProvider.objects.filter(organization=organization).update(required=False)
    return claim


# --- the policy and joining ---------------------------------------------------------------------


def sso_policy_set(
    *, membership: Membership, required: bool, default_role: str, request=None
) -> IdentityProvider:
    """Owners choose the role of people who join through SSO, and whether every member must
    sign in through it. Requiring it needs a verified domain and an owner who has signed in
    through the provider (else the owner would lock themselves out)."""
    _check_owner(membership)
    organization = membership.organization
    provider = (
        IdentityProvider.objects.filter(organization=organization).select_related("app").first()
    )
    if provider is None:
        raise ApplicationError("Add the identity provider first.", code="not_configured")
    if default_role not in dict(JOIN_ROLES):
        raise ApplicationError("Choose one of the listed roles.", field="default_role")
    required = bool(required)
    if required and not provider.required:
        if not organization.domain_claims.filter(state=ClaimState.VERIFIED).exists():
            raise ApplicationError(
                "SSO can be required once the operator has verified one of your domains.",
                field="required",
            )
        if not SocialAccount.objects.filter(
            user=membership.user, provider=provider.provider_id
        ).exists():
            raise ApplicationError(
                f"Sign in through {provider.name} once yourself before you require it: "
                "otherwise you could lock yourself out.",
                field="required",
            )
    changes: dict[str, bool | str] = {}
    if provider.required != required:
        changes["required"] = required
    if provider.default_role != default_role:
        changes["default_role"] = default_role
    if changes:
        for field, value in changes.items():
            setattr(provider, field, value)
        provider.save(update_fields=list(changes))
        audit_record(
            action="sso.policy_changed",
            organization=organization,
            actor=membership,
            request=request,
            target=provider,
            detail=changes,
        )
    return provider


def sso_join(*, user: User, provider: IdentityProvider, request=None) -> Membership | None:
    """After a sign-in through the provider: the person is (or becomes) a member, with the
    organization's default role. Returns the new membership, or None if they were one."""
    organization: Organization = provider.organization
    try:
        with transaction.atomic():
            membership, created = Membership.objects.get_or_create(
                organization=organization,
                user=user,
                defaults={"role": provider.default_role or Role.MEMBER},
            )
            if created:
                audit_record(
                    action="member.joined_through_sso",
                    organization=organization,
                    actor=user,
                    request=request,
                    target=user,
                    detail={"role": membership.role, "provider": provider.name},
                )
    except IntegrityError:  # a concurrent sign-in made it
        return None
    return membership if created else None
