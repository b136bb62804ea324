from functools import cache

from portal.orgs.selectors import membership_list_for_user
from portal.orgs.standing import organization_launch_holds


def current_organization(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    memberships = getattr(request, "user_memberships", None)
    if memberships is None:  # not an organization's page (organization_view reads them)
        memberships = list(membership_list_for_user(user=user))
    current = getattr(request, "membership", None)
    if current is None:
        slug = request.session.get("current_org")
        current = next((m for m in memberships if m.organization.slug == slug), None)
        if current is None and memberships:
            current = memberships[0]
    organization = current.organization if current else None

    @cache
    def launch_holds():
        # Asked only by the pages that show them (the layout's banner, the launch button),
        # once per page however often the template reads it.
        # A page may have read some of them already (the billing page reads its own).
        known = getattr(request, "launch_hold_reasons", None)
        return organization_launch_holds(organization, known) if organization is not None else []

    return {
        "launch_holds": launch_holds,
        "user_memberships": memberships,
        "current_membership": current,
        "current_organization": current.organization if current else None,
    }
