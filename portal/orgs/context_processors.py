from portal.orgs.selectors import membership_list_for_user


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
    return {
        "user_memberships": memberships,
        "current_membership": current,
        "current_organization": current.organization if current else None,
    }
