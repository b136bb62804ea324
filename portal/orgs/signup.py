"""Sign-up makes the person's first organization (unless they came to join one).

allauth's sign-up form gets the extra fields of `SignupForm` (ACCOUNT_SIGNUP_FORM_CLASS) and
sends `user_signed_up`, on which `create_first_organization` runs (connected in OrgsConfig).

Someone who follows an invitation link signs up through `views.InvitationSignupView` (on
allauth's own URL, portal/urls.py): the invited address is filled in and fixed, the organization is
named and there is no organization of their own to name; signing up accepts the invitation.
The link came to that address, so the address counts as verified (allauth's stashed
verified e-mail): no confirmation mail, straight into the organization.
"""

from allauth.account.adapter import get_adapter
from allauth.account.signals import user_signed_up
from django import forms
from django.contrib import messages
from django.dispatch import receiver
from django.http import HttpRequest

from portal.lib.errors import ApplicationError
from portal.orgs import selectors, services
from portal.orgs.forms import ORGANIZATION_NAME_MAX_LENGTH
from portal.orgs.models import Invitation
from portal.orgs.services import organization_create_for_new_user

PENDING_INVITATION_SESSION_KEY = "pending_invitation"


class SignupForm(forms.Form):
    """Extra fields on allauth's sign-up form; allauth calls `signup()` after creating the user."""

    full_name = forms.CharField(max_length=150, required=False, label="Your name")
    organization_name = forms.CharField(
        max_length=ORGANIZATION_NAME_MAX_LENGTH,
        required=False,
        label="Organization",
        help_text="The team that will own instances and pay the bills. You can rename it later.",
    )

    def signup(self, request, user) -> None:
        user.full_name = self.cleaned_data.get("full_name", "").strip()
        user.save(update_fields=["full_name"])
        # The first organization is made by `create_first_organization` below, which also
        # covers people who sign up through an invitation link.
        request.session["signup_organization_name"] = self.cleaned_data.get(
            "organization_name", ""
        ).strip()


def pending_invitation(request: HttpRequest) -> Invitation | None:
    """The usable invitation whose link this browser followed, if any."""
    token = request.session.get(PENDING_INVITATION_SESSION_KEY)
    if not token:
        return None
    invitation = selectors.invitation_get_by_token(token=token)
    return None if services.invitation_problem(invitation) else invitation


def remember_invitation(request: HttpRequest, *, token: str, invitation: Invitation) -> None:
    """Called when someone not signed in opens an invitation link: sign-up and sign-in come
    back to it (AccountAdapter), and sign-up takes the invited address as verified."""
    request.session[PENDING_INVITATION_SESSION_KEY] = token
    get_adapter(request).stash_verified_email(request, invitation.email)


@receiver(user_signed_up, dispatch_uid="orgs_create_first_organization")
def create_first_organization(sender, request, user, **kwargs) -> None:
    """Everyone starts with an organization of their own, unless they came to join one: then
    signing up accepts that invitation."""
    session = getattr(request, "session", None)
    if kwargs.get("sociallogin") is not None:
        return  # signed up through an organization's single sign-on: they join it (portal/sso)
    if session is not None and session.get(PENDING_INVITATION_SESSION_KEY):
        _accept_pending_invitation(request, user)
        return
    name = session.pop("signup_organization_name", "") if session is not None else ""
    organization_create_for_new_user(user=user, name=name, request=request)


def _accept_pending_invitation(request, user) -> None:
    token = request.session[PENDING_INVITATION_SESSION_KEY]
    try:
        membership = services.invitation_accept(token=token, user=user, request=request)
    except ApplicationError:
        # E.g. withdrawn meanwhile: the invitation page (where sign-up returns) says why.
        return
    request.session.pop(PENDING_INVITATION_SESSION_KEY, None)
    request.session.pop("signup_organization_name", None)
    request.session["current_org"] = membership.organization.slug
    messages.success(
        request,
        f"Welcome to {membership.organization}. Your role is {membership.get_role_display()}.",
    )
