"""Writes for SSH keys: add and delete. The only places an SshKey row is created or removed."""

from django.db import IntegrityError, transaction

from portal.audit.services import audit_record
from portal.lib.errors import ApplicationError
from portal.lib.sshkey import SshKeyError, parse_public_key
from portal.orgs.models import Membership
from portal.sshkeys.models import NAME_MAX_LENGTH, SshKey, manages_all_keys


def _clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ApplicationError("Give the key a name, e.g. the computer it lives on.", field="name")
    if len(name) > NAME_MAX_LENGTH:
        raise ApplicationError(
            f"A key name can be at most {NAME_MAX_LENGTH} characters.", field="name"
        )
    return name


def _duplicate_error(existing: SshKey, membership: Membership) -> ApplicationError:
    organization = membership.organization
    if existing.is_visible_to(membership):
        whose = (
            "shared with the organization"
            if existing.is_shared
            else "your personal key"
            if existing.user_id == membership.user_id
            else f"personal key of {existing.user.email}"
        )
        message = f"This key is already in {organization} as “{existing.name}” ({whose})."
    else:
        message = (
            f"This key is already in {organization} as another member's personal key. "
            "A key can be added to an organization once; ask an owner or admin to share it."
        )
    return ApplicationError(message, field="public_key", code="duplicate")


def sshkey_add(*, membership: Membership, name: str, public_key: str, shared: bool) -> SshKey:
    """Add a key for the member (personal) or, for owners and admins, for everyone (shared)."""
    if not membership.can("instances.manage"):
        raise ApplicationError("Your role does not allow adding SSH keys.", code="forbidden")
    if shared and not manages_all_keys(membership):
        raise ApplicationError(
            "Only owners and admins can share a key with the whole organization.",
            field="shared",
            code="forbidden",
        )
    name = _clean_name(name)
    try:
        parsed = parse_public_key(public_key)
    except SshKeyError as error:
        raise ApplicationError(error.message, field="public_key", code=error.code) from error

    organization = membership.organization
    existing = (
        SshKey.objects.select_related("user")
        .filter(organization=organization, fingerprint=parsed.fingerprint)
        .first()
    )
    if existing is not None:
        raise _duplicate_error(existing, membership)
    try:
        with transaction.atomic():
            key = SshKey.objects.create(
                organization=organization,
                user=None if shared else membership.user,
                name=name,
                public_key=parsed.normalized,
                key_type=parsed.key_type,
                bits=parsed.bits,
                fingerprint=parsed.fingerprint,
                created_by=membership.user,
            )
            audit_record(
                action="sshkey.added",
                organization=organization,
                actor=membership,
                target=key,
                detail={"fingerprint": key.fingerprint, "shared": shared},
            )
            return key
    except IntegrityError as exc:  # the same key added at the same moment by someone else
        existing = SshKey.objects.select_related("user").get(
            organization=organization, fingerprint=parsed.fingerprint
        )
        raise _duplicate_error(existing, membership) from exc


def sshkey_delete(*, membership: Membership, key: SshKey) -> None:
    """Members delete their own personal keys; owners and admins any key of the organization.

    Instances already running keep the key in their authorized_keys; it is no longer offered
    for new launches.
    """
    if key.organization_id != membership.organization_id:
        raise ApplicationError("There is no such SSH key.", code="not_found")
    if not key.can_be_deleted_by(membership):
        raise ApplicationError(
            "You can delete only your own personal keys. Ask an owner or admin to delete this one.",
            code="forbidden",
        )
    with transaction.atomic():
        audit_record(
            action="sshkey.deleted",
            organization=membership.organization,
            actor=membership,
            target=key,
            detail={"fingerprint": key.fingerprint, "shared": key.is_shared},
        )
        key.delete()
