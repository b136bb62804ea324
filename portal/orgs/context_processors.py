from functools import cache

from django.utils.functional import SimpleLazyObject

from portal.orgs.models import Membership
from portal.orgs.selectors import membership_list_for_user
from portal.orgs.standing import organization_launch_holds


def current_organization(request) -> dict:
    """The console layout's organization: the member's organizations, the current one and its
    holds on launching. An organization's page has read the memberships already; elsewhere
    they are read when a template first asks for them, so that pages that never do (the
    admin's, on every view of staff) do not read them."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    @cache
    def chosen() -> tuple[list[Membership], Membership | None]:
        memberships = getattr(request, "user_memberships", None)
        if memberships is None:  # not an organization's page (organization_view reads them)
            memberships = list(membership_list_for_user(user=user))
        current = getattr(request, "membership", None)
        if current is None:
            slug = request.session.get("current_org")
            current = next((m for m in memberships if m.organization.slug == slug), None)
            if current is None and memberships:
                current = memberships[0]
        return memberships, current

    def organization():
        current = chosen()[1]
        return current.organization if current else None

    @cache
    def launch_holds():
        # Asked only by the pages that show them (the layout's banner, the launch button),
        # once per page however often the template reads it.
        # A page may have read some of them already (the billing page reads its own).
        known = getattr(request, "launch_hold_reasons", None)
        current = organization()
        return organization_launch_holds(current, known) if current is not None else []

    if getattr(request, "membership", None) is not None:  # an organization's page
        memberships, current = chosen()
        return {
            "launch_holds": launch_holds,
            "user_memberships": memberships,
            "current_membership": current,
            "current_organization": organization(),
        }
    return {
        "launch_holds": launch_holds,
        "user_memberships": SimpleLazyObject(lambda: chosen()[0]),
        "current_membership": SimpleLazyObject(lambda: chosen()[1]),
        "current_organization": SimpleLazyObject(organization),
    }
