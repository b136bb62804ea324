"""Forms of single sign-on. They carry values; services check every rule."""

from django import forms

from portal.sso.models import DOMAIN_MAX_LENGTH, JOIN_ROLES


class IdentityProviderForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        required=False,
        label="Display name",
        help_text="Shown on the sign-in button, e.g. “Acme Okta”. Default: the issuer's host.",
    )
    issuer = forms.CharField(
        max_length=300,
        label="Issuer URL",
        help_text="The provider's issuer, e.g. https://acme.okta.com (its discovery document "
        "is at this URL + /.well-known/openid-configuration).",
        widget=forms.URLInput(attrs={"placeholder": "https://login.example.com"}),
    )
    client_id = forms.CharField(max_length=191, label="Client ID")
    client_secret = forms.CharField(
        max_length=500,
        required=False,
        label="Client secret",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )


class DomainClaimForm(forms.Form):
    domain = forms.CharField(
        max_length=DOMAIN_MAX_LENGTH,
        label="E-mail domain",
        widget=forms.TextInput(attrs={"placeholder": "example.com", "autocomplete": "off"}),
    )


class PolicyForm(forms.Form):
    default_role = forms.ChoiceField(
        choices=JOIN_ROLES,
        label="Role of people who join through SSO",
    )
    required = forms.BooleanField(
        required=False,
        label="Require SSO: members sign in only through the identity provider",
        help_text="Password sign-in is refused for every member of the organization.",
    )


class SsoStartForm(forms.Form):
    email = forms.EmailField(
        label="Work e-mail",
        widget=forms.EmailInput(attrs={"autocomplete": "email", "placeholder": "you@company.com"}),
    )
