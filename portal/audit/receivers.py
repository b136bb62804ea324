"""Account events come from allauth and Django as signals; each receiver writes one audit entry.

Connected in AuditConfig.ready(). Account events belong to no organization: they are in the
staff's log (admin), not on an organization's audit page.

Sign-in uses allauth's `user_logged_in`, not Django's: allauth sends it once a sign-in is complete
(after the two-factor step, after e-mail confirmation), while Django's fires for every `login()`,
including the test client's `force_login`.
"""

from allauth.account import signals as account_signals
from allauth.mfa import signals as mfa_signals
from allauth.mfa.models import Authenticator
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver

from portal.audit.models import ActorKind
from portal.audit.services import audit_record


def _kind_for(actor, account_owner) -> str:
    """Staff confirming someone else's address (allauth's admin action) act as staff."""
    if actor is not None and actor != account_owner and getattr(actor, "is_staff", False):
        return ActorKind.STAFF
    return ActorKind.USER


def _signed_in_user(request):
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


@receiver(account_signals.user_signed_up, dispatch_uid="audit_signed_up")
def signed_up(sender, request, user, **kwargs) -> None:
    audit_record(action="auth.signed_up", actor=user, request=request, target=user)


@receiver(account_signals.user_logged_in, dispatch_uid="audit_logged_in")
def logged_in(sender, request, user, **kwargs) -> None:
    audit_record(action="auth.login", actor=user, request=request, target=user)


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def login_failed(sender, credentials, request=None, **kwargs) -> None:
    """Django sends this when no backend accepted the credentials; the password is masked.

    The actor is whoever typed the address (kept as the label); the target is the account it
    belongs to, when there is one. Someone already signed in is re-entering their password.
    """
    typed = str(credentials.get("email") or credentials.get("username") or "").strip().lower()
    account = get_user_model().objects.filter(email__iexact=typed).first() if typed else None
    signed_in = _signed_in_user(request)
    audit_record(
        action="auth.login_failed",
        actor=signed_in,
        actor_kind=ActorKind.USER,
        actor_label=None if signed_in else typed,
        request=request,
        target=account,
        detail={"email": typed, **({"reauthentication": True} if signed_in else {})},
    )


@receiver(mfa_signals.authentication_failed, dispatch_uid="audit_mfa_failed")
def mfa_failed(sender, request, user, authenticator=None, reauthentication=False, **kwargs):
    audit_record(
        action="auth.mfa_failed",
        actor=user,
        request=request,
        target=user,
        detail={
            "type": getattr(authenticator, "type", ""),
            **({"reauthentication": True} if reauthentication else {}),
        },
    )


@receiver(mfa_signals.authenticator_added, dispatch_uid="audit_mfa_added")
def authenticator_added(sender, request, user, authenticator, **kwargs) -> None:
    action = (
        "mfa.recovery_codes_generated"
        if authenticator.type == Authenticator.Type.RECOVERY_CODES
        else "mfa.activated"
    )
    audit_record(
        action=action,
        actor=user,
        request=request,
        target=user,
        detail={"type": authenticator.type},
    )


@receiver(mfa_signals.authenticator_reset, dispatch_uid="audit_mfa_reset")
def authenticator_reset(sender, request, user, authenticator, **kwargs) -> None:
    audit_record(
        action="mfa.recovery_codes_generated",
        actor=user,
        request=request,
        target=user,
        detail={"type": authenticator.type, "regenerated": True},
    )


@receiver(mfa_signals.authenticator_removed, dispatch_uid="audit_mfa_removed")
def authenticator_removed(sender, request, user, authenticator, **kwargs) -> None:
    """Turning off the last authenticator also removes the recovery codes: two entries."""
    audit_record(
        action="mfa.deactivated",
        actor=user,
        request=request,
        target=user,
        detail={"type": authenticator.type},
    )


@receiver(account_signals.email_confirmed, dispatch_uid="audit_email_confirmed")
def email_confirmed(sender, request, email_address, **kwargs) -> None:
    owner = email_address.user
    actor = _signed_in_user(request) or owner
    audit_record(
        action="auth.email_confirmed",
        actor=actor,
        actor_kind=_kind_for(actor, owner),
        request=request,
        target=owner,
        detail={"email": email_address.email},
    )


@receiver(account_signals.email_changed, dispatch_uid="audit_email_changed")
def email_changed(sender, request, user, from_email_address, to_email_address, **kwargs) -> None:
    audit_record(
        action="auth.email_changed",
        actor=user,
        request=request,
        target=user,
        detail={
            "from": getattr(from_email_address, "email", ""),
            "to": getattr(to_email_address, "email", ""),
        },
    )


@receiver(account_signals.password_changed, dispatch_uid="audit_password_changed")
def password_changed(sender, request, user, **kwargs) -> None:
    audit_record(action="auth.password_changed", actor=user, request=request, target=user)


@receiver(account_signals.password_reset, dispatch_uid="audit_password_reset")
def password_reset(sender, request, user, **kwargs) -> None:
    audit_record(action="auth.password_reset", actor=user, request=request, target=user)
