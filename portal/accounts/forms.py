from django import forms

from portal.orgs.forms import ORGANIZATION_NAME_MAX_LENGTH


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
        # The first organization is created by the user_signed_up signal handler, which
        # also covers people who sign up through an invitation link.
        request.session["signup_organization_name"] = self.cleaned_data.get(
            "organization_name", ""
        ).strip()
