from datetime import timedelta

from django import forms
from django.http import QueryDict
from django.utils import timezone

from portal.api import scopes as token_scopes
from portal.api.models import NAME_MAX_LENGTH, Scope

EXPIRY_CHOICES = [
    ("30", "In 30 days"),
    ("90", "In 90 days"),
    ("365", "In a year"),
    ("never", "Never (until revoked)"),
]
CUSTOM = "custom"
ACCESS_CHOICES = {**dict(Scope.choices), CUSTOM: "Only the scopes I choose below"}


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_MAX_LENGTH,
        error_messages={"required": "Give the token a name, e.g. where it is used."},
        widget=forms.TextInput(attrs={"placeholder": "e.g. CI pipeline", "autocomplete": "off"}),
    )
    access = forms.ChoiceField(
        label="Access",
        choices=list(ACCESS_CHOICES.items()),
        initial=Scope.READ,
        widget=forms.RadioSelect,
        help_text="Whatever you choose, the token can do no more than your role allows.",
    )
    scopes = forms.MultipleChoiceField(
        required=False,
        choices=[
            (f"{name}:{action}", f"{name}:{action}")
            for name, area in token_scopes.AREAS.items()
            for action in (token_scopes.READ, token_scopes.WRITE)
            if action == token_scopes.READ or area.write
        ],
        widget=forms.CheckboxSelectMultiple,
    )
    allowed_ips = forms.CharField(
        required=False,
        max_length=2000,
        label="Allowed addresses",
        help_text="Optional: IP addresses or networks it may be used from, one per line or "
        "comma-separated (e.g. 203.0.113.7, 10.20.0.0/16). Empty: from anywhere.",
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "203.0.113.0/24"}),
    )
    expires = forms.ChoiceField(label="Expires", choices=EXPIRY_CHOICES, initial="90")

    def __init__(self, *args, membership=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.membership = membership
        if membership is not None and not token_scopes.role_can_write(membership):
            access = self.fields["access"]
            assert isinstance(access, forms.ChoiceField)
            access.choices = [(Scope.READ, Scope.READ.label), (CUSTOM, ACCESS_CHOICES[CUSTOM])]

    def scope_rows(self):
        """(area, label, read choice, write choice or None, allowed read, allowed write)."""
        data = self.data
        chosen = set(data.getlist("scopes")) if isinstance(data, QueryDict) else set()
        rows = []
        for name, area in token_scopes.AREAS.items():
            can_read = self.membership is None or self.membership.can(area.read)
            can_write = bool(
                area.write and (self.membership is None or self.membership.can(area.write))
            )
            rows.append(
                {
                    "name": name,
                    "label": area.label,
                    "read": f"{name}:read",
                    "write": f"{name}:write" if area.write else None,
                    "can_read": can_read,
                    "can_write": can_write,
                    "read_checked": f"{name}:read" in chosen,
                    "write_checked": f"{name}:write" in chosen,
                }
            )
        return rows

    def token_arguments(self) -> dict:
        data = self.cleaned_data
        if data["access"] == CUSTOM:
            return {"scopes": data["scopes"], "allowed_ips": data["allowed_ips"]}
        return {"scope": data["access"], "allowed_ips": data["allowed_ips"]}

    def expires_at(self):
        value = self.cleaned_data["expires"]
        return None if value == "never" else timezone.now() + timedelta(days=int(value))
