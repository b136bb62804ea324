"""allauth's social accounts, as single sign-on per organization needs them.

* `StrictOIDCAdapter`: allauth's OpenID Connect adapter, except that the ID token is always
  verified against the provider's published keys (allauth skips the signature when the token
  came straight from the token endpoint) by portal.lib.idtoken, which says why a token is
  refused (expired, another audience, a bad signature).
* `SocialAccountAdapter` (SOCIALACCOUNT_ADAPTER): a sign-in is accepted only through an
  organization's provider, with an e-mail address the provider says is verified, of a domain
  the organization has verified; anything else ends on a page that says why, and no account
  is made. Errors of the OAuth/OIDC exchange end on the same page.
"""

from __future__ import annotations

import logging
from typing import NoReturn

import requests
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.adapter import get_adapter as get_social_adapter
from allauth.socialaccount.providers.base.constants import AuthError
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.providers.openid_connect.views import OpenIDConnectOAuth2Adapter
from django.http import HttpRequest
from django.shortcuts import render

from portal.lib.idtoken import IdTokenError, verify_id_token
from portal.sso.selectors import (
    domain_of,
    identity_provider_get_by_provider_id,
    verified_domains,
)

logger = logging.getLogger(__name__)


class IdTokenRefused(OAuth2Error):
    """An ID token that failed a check; allauth treats it as any OAuth2 error."""

    def __init__(self, error: IdTokenError):
        super().__init__(error.message)
        self.reason = error.reason
        self.message = error.message


class StrictOIDCAdapter(OpenIDConnectOAuth2Adapter):
    def _decode_id_token(self, app, id_token: str) -> dict:
        config = self.openid_config
        try:
            with get_social_adapter().get_requests_session() as session:
                response = session.get(config["jwks_uri"])
                response.raise_for_status()
                keys = response.json()
        except (requests.RequestException, ValueError, KeyError) as exc:
            raise OAuth2Error("The provider's signing keys could not be read.") from exc
        try:
            return verify_id_token(
                id_token,
                keys=keys if isinstance(keys, dict) else {},
                issuer=config["issuer"],
                audience=app.client_id,
            )
        except IdTokenError as error:
            raise IdTokenRefused(error) from None


def refuse(request: HttpRequest, message: str, *, provider=None, status: int = 403) -> NoReturn:
    """End the sign-in on a page that says why (no account is made, nobody is signed in)."""
    raise ImmediateHttpResponse(
        render(
            request,
            "sso/refused.html",
            {"message": message, "provider": provider},
            status=status,
        )
    )


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def pre_social_login(self, request, sociallogin) -> None:
        provider = identity_provider_get_by_provider_id(sociallogin.account.provider)
        if provider is None:
            refuse(request, "This sign-in provider is not set up on Backfill any more.")
        name = provider.name
        address = sociallogin.email_addresses[0] if sociallogin.email_addresses else None
        if address is None or not address.email:
            refuse(
                request,
                f"{name} did not give Backfill your e-mail address. Ask your administrator "
                "to release the email claim to Backfill.",
                provider=provider,
            )
        if not address.verified:
            refuse(
                request,
                f"{name} says your e-mail address {address.email} is not verified. Verify it "
                f"with {name} first, then sign in again.",
                provider=provider,
            )
        organization = provider.organization
        if domain_of(address.email) not in verified_domains(organization=organization):
            refuse(
                request,
                f"{address.email} is not an address of a domain {organization.name} has "
                f"verified on Backfill, so it cannot sign in through {name}. Sign in with your "
                "password, or ask an owner of the organization to claim the domain.",
                provider=provider,
            )

    def is_auto_signup_allowed(self, request, sociallogin) -> bool:
        return True  # the provider vouched for a verified address of a verified domain

    def populate_user(self, request, sociallogin, data):
        user = super().populate_user(request, sociallogin, data)
        name = " ".join(str(data.get("name") or "").split())
        if name and hasattr(user, "full_name"):
            user.full_name = name[:150]
        return user

    def on_authentication_error(
        self, request, provider, error=None, exception=None, extra_context=None
    ) -> None:
        configured = identity_provider_get_by_provider_id(getattr(provider, "sub_id", ""))
        name = configured.name if configured else "The identity provider"
        if isinstance(exception, IdTokenRefused):
            message = f"{name} sent a sign-in token Backfill cannot accept: {exception.message}"
        elif error == AuthError.CANCELLED:
            message = f"You cancelled signing in at {name}."
        elif isinstance(exception, requests.RequestException):
            message = f"{name} could not be reached. Try again in a moment."
        elif exception is not None:
            message = f"Signing in through {name} failed: {exception}"
        else:
            message = f"{name} did not complete the sign-in."
        logger.info("SSO sign-in refused (%s): %s", getattr(provider, "sub_id", "?"), message)
        refuse(request, message, provider=configured, status=400)
