"""Writes for organizations, memberships and invitations.

Each write leaves an audit entry in the same transaction; `request`, when the caller has one,
gives the entry its IP address.
"""

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from portal.accounts.models import User
from portal.audit.models import AuditEntry
from portal.audit.services import audit_record
from portal.lib.errors import ApplicationError, RateLimited
from portal.notifications.services import notify
from portal.orgs import signals
from portal.orgs.models import (
    Invitation,
    Membership,
    Organization,
    Suspension,
    invitation_token_hash,
    new_invitation_token,
)
from portal.orgs.roles import Role, roles_assignable_by
from portal.orgs.selectors import organization_suspension
from portal.orgs.two_factor import user_has_two_factor

NAME_MAX_LENGTH = 100
REASON_MAX_LENGTH = 2000


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


@transaction.atomic
def organization_require_two_factor(
    *, organization: Organization, required: bool, actor: Membership, request=None
) -> Organization:
    """Require (or stop requiring) two-factor of every member. Owners only, and an owner turns
    it on only with two-factor of their own (they would otherwise lock themselves out)."""
    if not actor.can("members.manage"):
        raise ApplicationError(
            "Only owners decide whether members need two-factor.", code="forbidden"
        )
    if required and not user_has_two_factor(actor.user):
        raise ApplicationError(
            "Turn on two-factor for your own account first (an authenticator app or a "
            "passkey), then require it of everyone.",
            code="invalid_state",
        )
    if organization.require_two_factor == required:
        return organization
    organization.require_two_factor = required
    organization.save(update_fields=["require_two_factor"])
    audit_record(
        action="org.two_factor_required" if required else "org.two_factor_optional",
        organization=organization,
        actor=actor,
        request=request,
        target=organization,
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
    _check_invitation_rate(actor)
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
    _send_invitation(invitation, token)
    return invitation, token


@transaction.atomic
def invitation_resend(*, actor: Membership, invitation: Invitation, request=None) -> str:
    if not actor.can("members.invite"):
        raise ApplicationError("Only owners and admins can resend invitations.", code="forbidden")
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at or invitation.revoked_at:
        raise ApplicationError("This invitation is no longer open.")
    _check_invitation_rate(actor)
    token = new_invitation_token()
    invitation.token_hash = invitation_token_hash(token)
    invitation.expires_at = Invitation.default_expiry()
    invitation.save(update_fields=["token_hash", "expires_at"])
    _audit_invitation("invitation.resent", invitation, actor=actor, request=request)
    _send_invitation(invitation, token)
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


INVITATION_SENDS = ("invitation.created", "invitation.resent")


def _check_invitation_rate(actor: Membership) -> None:
    """Invitations and resends (each one an e-mail to someone outside) are limited per
    organization and per person, over the last hour, counted from the audit log. The
    organization's row is locked first, so that two at once are counted one after the other."""
    organization = actor.organization
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
    sent = AuditEntry.objects.filter(
        action__in=INVITATION_SENDS, at__gte=timezone.now() - timedelta(hours=1)
    )
    per_user = settings.INVITATIONS_PER_USER_PER_HOUR
    mine = sent.filter(actor_user=actor.user)
    if mine.count() >= per_user:
        raise RateLimited(
            f"You can send at most {per_user} invitations an hour (resends count too). "
            "Try again later; nothing was sent.",
            retry_after=_seconds_until_one_leaves(mine, per_user),
        )
    per_organization = settings.INVITATIONS_PER_ORGANIZATION_PER_HOUR
    ours = sent.filter(organization=organization)
    if ours.count() >= per_organization:
        raise RateLimited(
            f"{organization.name} has sent {per_organization} invitations in the last hour, the "
            "most allowed (resends count too). Try again later; nothing was sent.",
            retry_after=_seconds_until_one_leaves(ours, per_organization),
        )


def _seconds_until_one_leaves(entries, limit: int) -> int:
    """Seconds until the count of the last hour drops under the limit again."""
    times = list(entries.order_by("-at").values_list("at", flat=True)[:limit])
    frees_at = times[-1] + timedelta(hours=1)
    return int((frees_at - timezone.now()).total_seconds()) + 1


def _audit_invitation(action: str, invitation: Invitation, *, actor, request) -> None:
    audit_record(
        action=action,
        organization=invitation.organization,
        actor=actor,
        request=request,
        target=invitation,
        detail={"email": invitation.email, "role": invitation.role},
    )


def _send_invitation(invitation: Invitation, token: str) -> None:
    notify("invitation", invitation_id=invitation.pk, token=token)


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
    notify("invitation_accepted", invitation_id=invitation.pk)
    return membership


def _staff(user: User | None) -> User:
    if user is None or not user.is_staff:
        raise ApplicationError("Only operator staff can do this.", code="forbidden")
    return user


def _text(value: str, *, field: str, what: str, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ApplicationError(f"Write {what}.", field=field, code="required")
    if len(value) > REASON_MAX_LENGTH:
        raise ApplicationError(
            f"Keep it under {REASON_MAX_LENGTH} characters; this has {len(value)}.", field=field
        )
    return value


# --- Suspensions ------------------------------------------------------------------------------


def organization_suspend(
    *,
    organization: Organization,
    reason: str,
    by: User | None,
    stop_instances: bool = False,
    system: str = "",
) -> Suspension:
    """No new launches, API tokens refused, optionally its instances stopped; owners e-mailed.

    Suspending an organization that is suspended already is refused and changes nothing.
    `system` (instead of a staff `by`): the rule that suspends (billing's dunning), named in
    the audit log.
    """
    if not system:
        _staff(by)
    reason = _text(reason, field="reason", what="why the organization is suspended")
    with transaction.atomic():
        Organization.objects.select_for_update().get(pk=organization.pk)
        current = organization_suspension(organization)
        if current is not None:
            raise ApplicationError(
                f"{organization.name} is already suspended (since "
                f"{current.suspended_at:%Y-%m-%d %H:%M} UTC: {current.reason}). "
                "Nothing was changed.",
                code="already_suspended",
            )
        suspension = Suspension.objects.create(
            organization=organization, reason=reason, stop_instances=stop_instances, suspended_by=by
        )
        audit_record(
            action="org.suspended",
            organization=organization,
            actor=by,
            actor_kind="staff" if by is not None else None,
            actor_label=system or None,
            target=organization,
            detail={"reason": reason, "stop_instances": stop_instances},
        )
        signals.organization_suspended.send(
            sender=Suspension, organization=organization, suspension=suspension, by=by
        )
        notify("organization_suspended", suspension_id=suspension.pk)
    return suspension


def organization_unsuspend(
    *, organization: Organization, by: User | None, note: str = "", system: str = ""
) -> Suspension:
    """Lift the suspension: launches and API tokens work again; owners e-mailed. `system`
    (instead of a staff `by`): the rule that lifts it (billing, once the invoice is paid)."""
    if not system:
        _staff(by)
    note = _text(note, field="note", what="a note", required=False)
    with transaction.atomic():
        suspension = (
            Suspension.objects.select_for_update()
            .filter(organization=organization, lifted_at__isnull=True)
            .first()
        )
        if suspension is None:
            raise ApplicationError(
                f"{organization.name} is not suspended; nothing was changed.",
                code="not_suspended",
            )
        suspension.lifted_at = timezone.now()
        suspension.lifted_by = by
        suspension.lift_note = note
        suspension.save(update_fields=["lifted_at", "lifted_by", "lift_note"])
        audit_record(
            action="org.unsuspended",
            organization=organization,
            actor=by,
            actor_kind="staff" if by is not None else None,
            actor_label=system or None,
            target=organization,
            detail={"note": note, "suspended_at": suspension.suspended_at},
        )
        notify("organization_unsuspended", suspension_id=suspension.pk)
    return suspension
