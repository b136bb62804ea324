"""Who may do what inside an organization. The single place where roles meet permissions."""

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    BILLING = "billing", "Billing"
    VIEWER = "viewer", "Viewer"


ROLE_DESCRIPTIONS = {
    Role.OWNER: "Everything, including roles, members and deleting the organization.",
    Role.ADMIN: "Manage instances, quotas, billing and invite people.",
    Role.MEMBER: "Launch and manage instances and SSH keys.",
    Role.BILLING: "Billing pages, invoices and budgets only.",
    Role.VIEWER: "Read-only access to instances.",
}

_ALL = frozenset(Role)
PERMISSIONS: dict[str, frozenset[str]] = {
    "org.view": _ALL,
    "org.rename": frozenset({Role.OWNER, Role.ADMIN}),
    "members.view": _ALL,
    "members.invite": frozenset({Role.OWNER, Role.ADMIN}),
    "members.manage": frozenset({Role.OWNER}),
    "instances.view": frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER}),
    "instances.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER}),
    "volumes.view": frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER}),
    "volumes.manage": frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER}),
    "quotas.view": frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER}),
    "quotas.request": frozenset({Role.OWNER, Role.ADMIN}),
    "billing.view": frozenset({Role.OWNER, Role.ADMIN, Role.BILLING}),
    "billing.manage": frozenset({Role.OWNER, Role.ADMIN, Role.BILLING}),
    "audit.view": frozenset({Role.OWNER, Role.ADMIN}),
    "webhooks.manage": frozenset({Role.OWNER, Role.ADMIN}),
}


def role_allows(role: str, permission: str) -> bool:
    if permission not in PERMISSIONS:
        raise KeyError(f"Unknown permission {permission!r}")
    return role in PERMISSIONS[permission]


def roles_assignable_by(role: str) -> list[Role]:
    """Owners may hand out any role; admins every role but owner."""
    if role == Role.OWNER:
        return list(Role)
    if role == Role.ADMIN:
        return [r for r in Role if r != Role.OWNER]
    return []
