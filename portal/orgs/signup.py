"""Sign-up makes the person's first organization (unless they came to join one).

allauth's sign-up form gets the extra fields of `SignupForm` (ACCOUNT_SIGNUP_FORM_CLASS) and
sends `user_signed_up`, on which `create_first_organization` runs (connected in OrgsConfig).
"""

from allauth.account.signals import user_signed_up
from django import forms
from django.dispatch import receiver

from portal.orgs.forms import ORGANIZATION_NAME_MAX_LENGTH
from portal.orgs.services import organization_create_for_new_user


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


@receiver(user_signed_up, dispatch_uid="orgs_create_first_organization")
def create_first_organization(sender, request, user, **kwargs) -> None:
    """Everyone starts with an organization of their own, unless they came to join one."""
    session = getattr(request, "session", None)
    if session is not None and session.get("pending_invitation"):
        return
    name = session.pop("signup_organization_name", "") if session is not None else ""
    organization_create_for_new_user(user=user, name=name, request=request)
