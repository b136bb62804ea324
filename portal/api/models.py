"""API tokens and the responses remembered for Idempotency-Key.

A token belongs to one person in one organization. What it may do is the person's current role
there (read again on every request), narrowed by the token's scopes (portal/api/scopes.py) and,
if it has one, its list of allowed client addresses. Only a hash of its secret is kept; see
portal/lib/apitoken.py for the format.
"""

import ipaddress
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone

from portal.api.scopes import allows as scopes_allow
from portal.orgs.roles import Role

if TYPE_CHECKING:
    from portal.orgs.models import Membership

NAME_MAX_LENGTH = 64
# Owners and admins see and revoke every token of the organization; others only their own.
# (A candidate for an "api_tokens.manage_all" permission in portal/orgs/roles.py.)
MANAGE_ALL_ROLES = frozenset({Role.OWNER, Role.ADMIN})


def manages_all_tokens(membership) -> bool:
    return membership.role in MANAGE_ALL_ROLES


class Scope(models.TextChoices):
    """The two presets of the token form: lists of scopes (portal/api/scopes.py)."""

    READ = "read", "Read only"
    READ_WRITE = "read_write", "Read and write"


MAX_ALLOWED_NETWORKS = 20


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> "ApiTokenQuerySet":
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).exclude(expires_at__lte=now)


class ApiToken(models.Model):
    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="api_tokens"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    prefix = models.CharField(max_length=8, unique=True, help_text="Public: bf_<prefix>_…")
    secret_hash = models.CharField(max_length=64, help_text="SHA-256 of the secret, in hex.")
    scopes = models.JSONField(default=list, help_text='e.g. ["instances:write", "billing:read"]')
    allowed_ips = models.JSONField(
        default=list,
        blank=True,
        help_text="Addresses and networks (CIDR) it may be used from; empty: anywhere.",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = ApiTokenQuerySet.as_manager()

    # Not a column: BearerTokenAuthentication sets it on the token of the request once it has
    # checked that the membership (the token's user in its organization) is still in force.
    membership: "Membership"

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"
        indexes = [models.Index(fields=["organization", "user"], name="apitoken_org_user")]

    def __str__(self) -> str:
        return f"{self.name} (bf_{self.prefix}_…)"

    @property
    def display_prefix(self) -> str:
        return f"bf_{self.prefix}_…"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.is_expired:
            return "expired"
        return "active"

    @property
    def scope_summary(self) -> list[tuple[str, list[str]]]:
        """[("write", ["instances"]), ("read", ["billing", …])] for tables."""
        groups: dict[str, list[str]] = {"write": [], "read": []}
        for scope in self.scopes:
            area, _, action = scope.partition(":")
            groups.setdefault(action, []).append(area.replace("_", " "))
        return [(action, areas) for action, areas in groups.items() if areas]

    def allows(self, area: str, action: str) -> bool:
        return scopes_allow(self.scopes, area, action)

    def allows_address(self, address: str | None) -> bool:
        if not self.allowed_ips:
            return True
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(
            ip in ipaddress.ip_network(network, strict=False) for network in self.allowed_ips
        )


class IdempotencyRecord(models.Model):
    """One Idempotency-Key of one token: the request it came with and the answer it got.

    Created before the request runs (the unique constraint is the lock: a second request with
    the same key waits for nothing and is told the first is in progress); the response is
    filled in when it is done. Forgotten after API_IDEMPOTENCY_TTL.
    """

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    # The JSON exactly as first sent, so that a replay is byte for byte the same answer.
    response_body = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["token", "key"], name="one_record_per_token_key")
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]

    def __str__(self) -> str:
        return f"{self.token_id}:{self.key}"
