"""Writes for organizations, memberships and invitations.

Each write leaves an audit entry in the same transaction; `request`, when the caller has one,
gives the entry its IP address.
"""

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from portal.accounts.models import User
from portal.audit.services import audit_record
from portal.core.errors import ApplicationError
from portal.orgs.models import (
    Invitation,
    Membership,
    Organization,
    invitation_token_hash,
    new_invitation_token,
)
from portal.orgs.roles import Role, roles_assignable_by

NAME_MAX_LENGTH = 100


def _clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ApplicationError("Give the organization a name.", field="name")
    if len(name) > NAME_MAX_LENGTH:
        raise ApplicationError(
            f"An organization name can be at most {NAME_MAX_LENGTH} characters.", field="name"
        )
    return name


def _unique_slug(name: str) -> str:
    base = slugify(name)[:100] or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def organization_create(*, user: User, name: str, request=None) -> Organization:
    name = _clean_name(name)
    organization = Organization.objects.create(name=name, slug=_unique_slug(name), created_by=user)
    Membership.objects.create(organization=organization, user=user, role=Role.OWNER)
    audit_record(
        action="org.created",
        organization=organization,
        actor=user,
        request=request,
        target=organization,
    )
    return organization


def organization_create_for_new_user(*, user: User, name: str = "", request=None) -> Organization:
    if not name.strip():
        local_part = user.email.split("@")[0]
        name = f"{user.full_name or local_part}'s organization"
    return organization_create(user=user, name=name[:NAME_MAX_LENGTH], request=request)


@transaction.atomic
def organization_rename(
    *, organization: Organization, name: str, actor: Membership | None = None, request=None
) -> Organization:
    old_name = organization.name
    organization.name = _clean_name(name)
    organization.save(update_fields=["name"])
    if organization.name != old_name:
        audit_record(
            action="org.renamed",
            organization=organization,
            actor=actor,
            request=request,
            target=organization,
            detail={"from": old_name, "to": organization.name},
        )
    return organization


def _owner_count(organization: Organization) -> int:
    return organization.memberships.filter(role=Role.OWNER).count()


@transaction.atomic
def membership_change_role(
    *, actor: Membership, membership: Membership, role: str, request=None
) -> Membership:
    if not actor.can("members.manage"):
        raise ApplicationError("Only owners can change roles.", code="forbidden")
    if role not in Role.values:
        raise ApplicationError("Choose one of the listed roles.", field="role")
    # Lock the owners so two owners demoting each other at once cannot leave none.
    list(Membership.objects.select_for_update().filter(organization=membership.organization_id))
    membership.refresh_from_db()
    if (
        membership.role == Role.OWNER
        and role != Role.OWNER
        and _owner_count(membership.organization) == 1
    ):
        raise ApplicationError(
            "This is the last owner. Make someone else an owner first.", code="last_owner"
        )
    old_role = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    if role != old_role:
        audit_record(
            action="member.role_changed",
            organization=membership.organization,
            actor=actor,
            request=request,
            target=membership.user,
            detail={"from": old_role, "to": role},
        )
    return membership


@transaction.atomic
def membership_remove(*, actor: Membership, membership: Membership, request=None) -> None:
    leaving_self = actor.pk == membership.pk
    if not leaving_self and not actor.can("members.manage"):
        raise ApplicationError("Only owners can remove members.", code="forbidden")
    list(Membership.objects.select_for_update().filter(organization=membership.organization_id))
    membership.refresh_from_db()
    if membership.role == Role.OWNER and _owner_count(membership.organization) == 1:
        message = (
            "You are the last owner. Make someone else an owner before you leave."
            if leaving_self
            else "This is the last owner and cannot be removed."
        )
        raise ApplicationError(message, code="last_owner")
    audit_record(
        action="member.left" if leaving_self else "member.removed",
        organization=membership.organization,
        actor=actor,
        request=request,
        target=membership.user,
        detail={"role": membership.role},
    )
    membership.delete()


@transaction.atomic
def invitation_create(
    *, actor: Membership, email: str, role: str, request=None
) -> tuple[Invitation, str]:
    """Create an invitation and return it with the plain token for the e-mailed link."""
    organization = actor.organization
    email = (email or "").strip().lower()
    if not actor.can("members.invite"):
        raise ApplicationError("Only owners and admins can invite people.", code="forbidden")
    if role not in [r.value for r in roles_assignable_by(actor.role)]:
        raise ApplicationError("You cannot invite someone with that role.", field="role")
    if organization.memberships.filter(user__email__iexact=email).exists():
        raise ApplicationError(f"{email} is already a member of {organization}.", field="email")
    open_invitations = organization.invitations.select_for_update().filter(
        email=email, accepted_at__isnull=True, revoked_at__isnull=True
    )
    for open_invitation in open_invitations:
        if open_invitation.status == "pending":
            raise ApplicationError(
                f"{email} has already been invited. Resend or revoke that invitation below.",
                field="email",
            )
        open_invitation.revoked_at = timezone.now()  # an expired one makes way for the new one
        open_invitation.save(update_fields=["revoked_at"])
    token = new_invitation_token()
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                organization=organization,
                email=email,
                role=role,
                token_hash=invitation_token_hash(token),
                invited_by=actor.user,
                expires_at=Invitation.default_expiry(),
            )
    except IntegrityError as exc:
        raise ApplicationError(f"{email} has already been invited.", field="email") from exc
    _audit_invitation("invitation.created", invitation, actor=actor, request=request)
    _send_invitation_on_commit(invitation, token)
    return invitation, token


@transaction.atomic
def invitation_resend(*, actor: Membership, invitation: Invitation, request=None) -> str:
    if not actor.can("members.invite"):
        raise ApplicationError("Only owners and admins can resend invitations.", code="forbidden")
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at or invitation.revoked_at:
        raise ApplicationError("This invitation is no longer open.")
    token = new_invitation_token()
    invitation.token_hash = invitation_token_hash(token)
    invitation.expires_at = Invitation.default_expiry()
    invitation.save(update_fields=["token_hash", "expires_at"])
    _audit_invitation("invitation.resent", invitation, actor=actor, request=request)
    _send_invitation_on_commit(invitation, token)
    return token


@transaction.atomic
def invitation_revoke(*, actor: Membership, invitation: Invitation, request=None) -> None:
    if not actor.can("members.invite"):
        raise ApplicationError("Only owners and admins can revoke invitations.", code="forbidden")
    updated = Invitation.objects.filter(
        pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    if not updated:
        raise ApplicationError("This invitation is no longer open.")
    _audit_invitation("invitation.revoked", invitation, actor=actor, request=request)


def _audit_invitation(action: str, invitation: Invitation, *, actor, request) -> None:
    audit_record(
        action=action,
        organization=invitation.organization,
        actor=actor,
        request=request,
        target=invitation,
        detail={"email": invitation.email, "role": invitation.role},
    )


def _send_invitation_on_commit(invitation: Invitation, token: str) -> None:
    from portal.notifications import emails

    transaction.on_commit(lambda: emails.send_invitation(invitation=invitation, token=token))


def invitation_problem(invitation: Invitation | None) -> str | None:
    """Why an invitation link cannot be used, in words for the person holding it."""
    if invitation is None:
        return "This invitation link is not valid. Ask for a new invitation."
    if invitation.accepted_at:
        return "This invitation has already been used."
    if invitation.revoked_at:
        return "This invitation was withdrawn. Ask for a new invitation."
    if invitation.expires_at <= timezone.now():
        return "This invitation has expired. Ask for a new invitation."
    return None


@transaction.atomic
def invitation_accept(*, token: str, user: User, request=None) -> Membership:
    invitation = (
        Invitation.objects.select_for_update()
        .select_related("organization")
        .filter(token_hash=invitation_token_hash(token))
        .first()
    )
    problem = invitation_problem(invitation)
    if problem:
        raise ApplicationError(problem, code="invitation_unusable")
    assert invitation is not None
    if invitation.email.lower() != user.email.lower():
        raise ApplicationError(
            f"This invitation was sent to {invitation.email}, but you are signed in as "
            f"{user.email}. Sign in with the invited address to accept it.",
            code="wrong_user",
        )
    if invitation.organization.memberships.filter(user=user).exists():
        raise ApplicationError(f"You are already a member of {invitation.organization}.")
    membership = Membership.objects.create(
        organization=invitation.organization, user=user, role=invitation.role
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    _audit_invitation("invitation.accepted", invitation, actor=user, request=request)
    return membership
