from collections.abc import Callable
from functools import wraps
from typing import Concatenate, ParamSpec, TypeVar, cast

from django.contrib.auth.decorators import login_required
from django.http.response import HttpResponseBase
from django_htmx.middleware import HtmxDetails

from portal.accounts.http import AuthenticatedRequest
from portal.orgs.models import Membership, Organization
from portal.orgs.selectors import membership_among, membership_list_for_user

P = ParamSpec("P")
R = TypeVar("R", bound=HttpResponseBase)


class OrganizationRequest(AuthenticatedRequest):
    """The request a view behind `organization_view` receives (only a type: at run time it is
    Django's request with these attributes set by the decorator and django-htmx's middleware).
    """

    membership: Membership  # the user's, in the organization of the URL, with its user
    organization: Organization  # membership.organization
    user_memberships: list[Membership]  # all the user's, for the organization switcher
    htmx: HtmxDetails
    # Set by a page that has read some holds itself (the billing page), for the layout's banner.
    launch_hold_reasons: dict[str, str | None]


def organization_view(
    permission: str = "org.view",
) -> Callable[[Callable[Concatenate[OrganizationRequest, P], R]], Callable[..., R]]:
    """Resolve `<slug:org>` from the URL into `request.membership` and `request.organization`.

    404 for organizations the user is not in, 403 for a role without the permission.
    """

    def decorator(view: Callable[Concatenate[OrganizationRequest, P], R]) -> Callable[..., R]:
        @login_required
        @wraps(view)
        def wrapper(
            request: AuthenticatedRequest, org: str, *args: P.args, **kwargs: P.kwargs
        ) -> R:
            org_request = cast(OrganizationRequest, request)
            # All the user's memberships in one query: the layout lists them too (the
            # organization switcher reads request.user_memberships).
            org_request.user_memberships = list(membership_list_for_user(user=request.user))
            membership = membership_among(
                org_request.user_memberships, slug=org, user=request.user, permission=permission
            )
            org_request.membership = membership
            org_request.organization = membership.organization
            if request.session.get("current_org") != membership.organization.slug:
                # Only on a switch: an assignment makes the session write itself back to the
                # database at the end of every request.
                request.session["current_org"] = membership.organization.slug
            return view(org_request, *args, **kwargs)

        return wrapper

    return decorator
