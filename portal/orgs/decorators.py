from functools import wraps

from django.contrib.auth.decorators import login_required

from portal.orgs.selectors import membership_among, membership_list_for_user


def organization_view(permission: str = "org.view"):
    """Resolve `<slug:org>` from the URL into `request.membership` and `request.organization`.

    404 for organizations the user is not in, 403 for a role without the permission.
    """

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, org: str, *args, **kwargs):
            # All the user's memberships in one query: the layout lists them too (the
            # organization switcher reads request.user_memberships).
            request.user_memberships = list(membership_list_for_user(user=request.user))
            membership = membership_among(
                request.user_memberships, slug=org, user=request.user, permission=permission
            )
            request.membership = membership
            request.organization = membership.organization
            if request.session.get("current_org") != membership.organization.slug:
                # Only on a switch: an assignment makes the session write itself back to the
                # database at the end of every request.
                request.session["current_org"] = membership.organization.slug
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
