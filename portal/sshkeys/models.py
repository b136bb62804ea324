from django.conf import settings
from django.db import models
from django.utils import timezone

from portal.lib import sshkey
from portal.orgs.models import Membership, Organization
from portal.orgs.roles import Role

NAME_MAX_LENGTH = 64

# Owners and admins manage every key of the organization: they share keys with everyone and may
# see and delete members' personal keys. (A candidate for an "sshkeys.manage_all" permission in
# portal/orgs/roles.py.)
MANAGE_ALL_ROLES = frozenset({Role.OWNER, Role.ADMIN})


def manages_all_keys(membership: Membership) -> bool:
    return membership.role in MANAGE_ALL_ROLES


class KeyType(models.TextChoices):
    ED25519 = sshkey.ED25519, "Ed25519"
    ECDSA_P256 = sshkey.ECDSA_P256, "ECDSA P-256"
    ECDSA_P384 = sshkey.ECDSA_P384, "ECDSA P-384"
    ECDSA_P521 = sshkey.ECDSA_P521, "ECDSA P-521"
    RSA = sshkey.RSA, "RSA"


class SshKey(models.Model):
    """A public key that may be put on instances. Personal to a member, or shared (user is None)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="ssh_keys"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="ssh_keys",
        help_text="The member this personal key belongs to; empty for a key shared with the "
        "whole organization.",
    )
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    public_key = models.TextField(help_text='One line: "type base64 [comment]".')
    key_type = models.CharField(max_length=32, choices=KeyType.choices)
    bits = models.PositiveIntegerField()
    fingerprint = models.CharField(max_length=64, help_text="SHA256, as ssh-keygen -l shows it.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "SSH key"
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "fingerprint"], name="one_ssh_key_per_fingerprint"
            )
        ]
        indexes = [models.Index(fields=["organization", "user"], name="sshkey_org_user")]

    def __str__(self) -> str:
        return f"{self.name} ({self.fingerprint})"

    @property
    def is_shared(self) -> bool:
        return self.user_id is None

    @property
    def type_label(self) -> str:
        """ "Ed25519", "ECDSA P-384", "RSA 4096"."""
        label = KeyType(self.key_type).label if self.key_type in KeyType.values else self.key_type
        return f"{label} {self.bits}" if self.key_type == KeyType.RSA else label

    @property
    def comment(self) -> str:
        """The free text after the key, often user@host."""
        parts = self.public_key.split(" ", 2)
        return parts[2] if len(parts) == 3 else ""

    def is_visible_to(self, membership: Membership) -> bool:
        return (
            self.organization_id == membership.organization_id
            and membership.can("instances.view")
            and (
                self.is_shared or manages_all_keys(membership) or self.user_id == membership.user_id
            )
        )

    def can_be_deleted_by(self, membership: Membership) -> bool:
        if self.organization_id != membership.organization_id:
            return False
        if not membership.can("instances.manage"):
            return False
        return manages_all_keys(membership) or (
            not self.is_shared and self.user_id == membership.user_id
        )
