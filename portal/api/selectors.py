"""Reads of API tokens, scoped to the member's organization."""

from django.db.models import QuerySet
from django.http import Http404

from portal.api.models import ApiToken, manages_all_tokens
from portal.orgs.models import Membership


def api_token_list_for_member(*, membership: Membership) -> QuerySet[ApiToken]:
    """The member's own tokens; owners and admins see every token of the organization."""
    tokens = ApiToken.objects.filter(organization_id=membership.organization_id).select_related(
        "user"
    )
    if manages_all_tokens(membership):
        return tokens
    return tokens.filter(user_id=membership.user_id)


def api_token_get_for_member(*, membership: Membership, pk: int) -> ApiToken:
    token = api_token_list_for_member(membership=membership).filter(pk=pk).first()
    if token is None:
        raise Http404("No such token")
    return token


def api_token_get_by_prefix(prefix: str) -> ApiToken | None:
    return ApiToken.objects.select_related("user", "organization").filter(prefix=prefix).first()


def membership_get_for_token(token: ApiToken) -> Membership | None:
    """The token user's membership in the token's organization, now (None if it ended)."""
    return (
        Membership.objects.select_related("organization", "user")
        .filter(user_id=token.user_id, organization_id=token.organization_id)
        .first()
    )
