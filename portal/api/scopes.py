"""Fine-grained token scopes: `<area>:<action>`, e.g. `instances:read`, `billing:write`.

Each area of the API names the permissions of portal/orgs/roles.py that its reads and its
writes need (AREAS). A token carries a list of scopes:

    instances:read     read the area
    instances:write    change it (and read it: a writer must see what it changes)
    instances:*        every action of the area (today: read and write)

A scope is granted only if the creator's role allows it when the token is made (never more
than the role allows), and a request needs both its scope and the role's permission at the
time of the request (a role that shrinks narrows its tokens at once).

The two presets of the first API ("read only" and "read and write") are lists of scopes too:
every area the role may read, or may write (and read the rest); tokens made before fine-grained
scopes were migrated to exactly that (migration 0003).
"""

from __future__ import annotations

from dataclasses import dataclass

READ = "read"
WRITE = "write"
ALL = "*"
ACTIONS = (READ, WRITE)


@dataclass(frozen=True)
class Area:
    name: str
    label: str
    read: str  # the permission a read needs
    write: str | None  # the permission a write needs; None: the area is read-only
    # Acts only on the token owner's own things (their tokens, their membership): every role
    # may write it, but it does not make a role one that "writes through the API".
    personal: bool = False


# In the order the token form shows them. Clusters (issue 17) join when their API lands; a
# view's `api_area` must be one of these (a test checks every API view).
AREAS: dict[str, Area] = {
    area.name: area
    for area in (
        Area("instances", "Instances", "instances.view", "instances.manage"),
        Area("ssh_keys", "SSH keys", "instances.view", "instances.manage"),
        Area("volumes", "Volumes", "volumes.view", "volumes.manage"),
        Area("catalog", "Catalog and prices", "org.view", None),
        Area("quotas", "Quotas", "quotas.view", "quotas.request"),
        Area("reservations", "Reserved capacity", "quotas.view", "quotas.request"),
        Area("billing", "Billing, invoices, budget", "billing.view", "billing.manage"),
        Area("webhooks", "Webhooks", "webhooks.manage", "webhooks.manage"),
        Area("members", "Members and invitations", "members.view", "members.invite"),
        Area("audit", "Audit log", "audit.view", None),
        Area("organization", "Organization", "org.view", "org.rename"),
        Area("tokens", "Your API tokens (revoke)", "org.view", "org.view", personal=True),
        Area("membership", "Your membership (leave)", "org.view", "org.view", personal=True),
    )
}


class ScopeError(ValueError):
    pass


def parse(scope: str) -> tuple[str, str]:
    """("instances", "write") for "instances:write"; ScopeError for what is not a scope."""
    if not isinstance(scope, str):
        raise ScopeError(f"{scope!r} is not a scope.")
    area, sep, action = scope.strip().partition(":")
    if not sep or area not in AREAS or action not in (READ, WRITE, ALL):
        known = ", ".join(f"{name}:read|write|*" for name in AREAS)
        raise ScopeError(f"{scope!r} is not a scope. Scopes are {known}.")
    if action == WRITE and AREAS[area].write is None:
        raise ScopeError(f"{area} is read-only: {area}:read.")
    return area, action


def normalize(scopes) -> list[str]:
    """Each area once, at its highest action: ["instances:write", "billing:read"], sorted in
    the order of AREAS. `*` becomes write (or read for a read-only area)."""
    if isinstance(scopes, str) or not isinstance(scopes, list | tuple | set):
        raise ScopeError('Scopes are a list, e.g. ["instances:read"].')
    best: dict[str, str] = {}
    for scope in scopes:
        area, action = parse(scope)
        if action == ALL:
            action = WRITE if AREAS[area].write else READ
        if best.get(area) != WRITE:
            best[area] = action
    return [f"{area}:{best[area]}" for area in AREAS if area in best]


def permission_for(area: str, action: str) -> str | None:
    spec = AREAS[area]
    return spec.write if action == WRITE else spec.read


def allows(scopes: list[str], area: str, action: str) -> bool:
    """Whether a token with `scopes` may do `action` (read or write) in `area`."""
    for scope in scopes:
        granted_area, _, granted = scope.partition(":")
        if granted_area == area and (granted == action or granted in (WRITE, ALL)):
            return True
    return False


def beyond_role(scopes: list[str], membership) -> list[str]:
    """The scopes of `scopes` that the member's role does not allow."""
    refused = []
    for scope in scopes:
        area, action = parse(scope)
        actions = (READ, WRITE) if action in (WRITE, ALL) else (READ,)
        for needed in actions:
            permission = permission_for(area, needed)
            if permission is None or not membership.can(permission):
                refused.append(scope)
                break
    return refused


def allowed_for(membership, action: str) -> list[str]:
    """Every scope the member's role allows at `action` in each area (a preset): write where
    the role writes, read where it only reads."""
    scopes = []
    for area, spec in AREAS.items():
        if action == WRITE and spec.write and membership.can(spec.write):
            scopes.append(f"{area}:{WRITE}")
        elif membership.can(spec.read):
            scopes.append(f"{area}:{READ}")
    return scopes


def role_can_write(membership) -> bool:
    """Whether the role changes anything of the organization through the API (a read and write
    token makes sense); the personal areas do not count."""
    return any(
        spec.write and not spec.personal and membership.can(spec.write) for spec in AREAS.values()
    )
