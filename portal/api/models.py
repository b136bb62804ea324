"""API tokens and the responses remembered for Idempotency-Key.

A token belongs to one person in one organization. What it may do is the person's current role
there (read again on every request), narrowed by the token's scope. Only a hash of its secret
is kept; see portal/lib/apitoken.py for the format.
"""

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone

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
    READ = "read", "Read only"
    READ_WRITE = "read_write", "Read and write"


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
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.READ)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
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
    def can_write(self) -> bool:
        return self.scope == Scope.READ_WRITE


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
