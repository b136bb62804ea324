"""`Authorization: Bearer bf_<prefix>_<secret>` for Django REST framework.

The token acts as its user with the role the user has in the token's organization now: the
membership is read again on every request, so a member who was removed (or whose role changed)
is refused (or narrowed) at once.
"""

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from portal.api.selectors import api_token_get_by_prefix, membership_get_for_token
from portal.api.services import api_token_touch
from portal.audit.services import client_ip
from portal.lib.apitoken import parse_token, secret_matches
from portal.lib.logs import bind_context
from portal.orgs.selectors import organization_suspension_reason
from portal.orgs.two_factor import two_factor_since

INVALID = "The token is not valid. Create one on the API page of your organization."


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None  # NotAuthenticated (401) from the permission check
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer":
            raise exceptions.AuthenticationFailed(
                "Use the Bearer scheme: Authorization: Bearer bf_…", code="invalid_token"
            )
        parsed = parse_token(value.strip())
        if parsed is None:
            raise exceptions.AuthenticationFailed(INVALID, code="invalid_token")
        prefix, secret = parsed
        token = api_token_get_by_prefix(prefix)
        if token is None or not secret_matches(secret, token.secret_hash):
            raise exceptions.AuthenticationFailed(INVALID, code="invalid_token")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed(
                f"The token “{token.name}” was revoked.", code="token_revoked"
            )
        if token.is_expired:
            raise exceptions.AuthenticationFailed(
                f"The token “{token.name}” expired on {token.expires_at:%Y-%m-%d %H:%M} UTC.",
                code="token_expired",
            )
        membership = membership_get_for_token(token)
        # A membership younger than the token is a later one (removed, then invited again):
        # the token belonged to the earlier membership and stays dead.
        if (
            membership is None
            or not membership.user.is_active
            or membership.created_at > token.created_at
        ):
            raise exceptions.AuthenticationFailed(
                "The token's owner is no longer a member of its organization.",
                code="token_inactive",
            )
        if token.organization.require_two_factor:
            since = two_factor_since(membership.user)
            if since is None or token.created_at < since:
                raise exceptions.PermissionDenied(
                    f"{token.organization.name} requires two-factor authentication, and this "
                    "token was made before its owner turned it on. Make a new token after "
                    "turning on two-factor.",
                    code="two_factor_required",
                )
        address = client_ip(request)
        if not token.allows_address(address):
            raise exceptions.PermissionDenied(
                f"The token “{token.name}” may be used only from {', '.join(token.allowed_ips)}; "
                f"this request came from {address or 'an unknown address'}.",
                code="ip_not_allowed",
            )
        if suspended := organization_suspension_reason(token.organization_id):
            raise exceptions.PermissionDenied(suspended, code="organization_suspended")
        token.membership = membership
        bind_context(
            user_id=membership.user_id, org=token.organization.slug, api_prefix=token.prefix
        )
        api_token_touch(token=token, ip=address)
        return membership.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
