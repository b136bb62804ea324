"""What a token may do: its scope (read or read and write) and its user's role.

Views name the permission of `portal/orgs/roles.py` they need for reads and for writes; the
role check is `Membership.can`, the same one the pages use.
"""

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission

from portal.api.models import ApiToken


class TokenPermission(BasePermission):
    def has_permission(self, request, view) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return False  # DRF answers 401 (NotAuthenticated)
        writes = request.method not in SAFE_METHODS
        if writes and not token.can_write:
            raise exceptions.PermissionDenied(
                "This token is read-only. Create a read and write token to make changes.",
                code="insufficient_scope",
            )
        permission = view.write_permission if writes else view.read_permission
        membership = token.membership
        if permission and not membership.can(permission):
            raise exceptions.PermissionDenied(
                f"Your role in {membership.organization.name} "
                f"({membership.get_role_display().lower()}) does not allow this.",
                code="forbidden",
            )
        return True
