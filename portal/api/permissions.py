"""What a token may do: its scopes (portal/api/scopes.py) and its user's role now.

Each view names its area (`api_area`: instances, billing, …) and the permission of
`portal/orgs/roles.py` it needs for reads and for writes; the role check is `Membership.can`,
the same one the pages use. A view without an area (who am I) is open to every token.
"""

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission

from portal.api.models import ApiToken
from portal.api.scopes import READ, WRITE


class TokenPermission(BasePermission):
    def has_permission(self, request, view) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return False  # DRF answers 401 (NotAuthenticated)
        if not hasattr(view, request.method.lower()):
            return True  # the view answers 405 Method Not Allowed
        writes = request.method not in SAFE_METHODS
        # The role first: no token can give what the role does not allow.
        permission = view.write_permission if writes else view.read_permission
        membership = token.membership
        if permission and not membership.can(permission):
            raise exceptions.PermissionDenied(
                f"Your role in {membership.organization.name} "
                f"({membership.get_role_display().lower()}) does not allow this.",
                code="forbidden",
            )
        area = getattr(view, "api_area", "")
        action = WRITE if writes else READ
        if area and not token.allows(area, action):
            raise exceptions.PermissionDenied(
                f"This token's scopes ({', '.join(token.scopes) or 'none'}) do not include "
                f"{area}:{action}. Create a token with that scope on the API page.",
                code="insufficient_scope",
            )
        return True
