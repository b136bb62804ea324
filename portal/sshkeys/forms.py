from typing import cast

from django import forms
from django.http import QueryDict

from portal.lib.sshkey import PRIVATE_KEY_WARNING, contains_private_key
from portal.sshkeys.models import NAME_MAX_LENGTH


class SshKeyForm(forms.Form):
    """Shape, and a pasted private key caught early; the service checks the key itself."""

    name = forms.CharField(
        max_length=NAME_MAX_LENGTH,
        error_messages={"required": "Give the key a name, e.g. the computer it lives on."},
        widget=forms.TextInput(attrs={"placeholder": "e.g. work laptop", "autocomplete": "off"}),
    )
    public_key = forms.CharField(
        label="Public key",
        error_messages={"required": "Paste a public key. To make a new key: ssh-keygen -t ed25519"},
        widget=forms.Textarea(
            attrs={
                "rows": 4,
                "placeholder": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA… you@laptop",
                "spellcheck": "false",
                "autocomplete": "off",
            }
        ),
        help_text="The contents of your .pub file, e.g. ~/.ssh/id_ed25519.pub. "
        "Ed25519, ECDSA, or RSA of 2048 bits or more.",
    )
    shared = forms.BooleanField(label="Share with the organization", required=False)

    def __init__(self, *args, can_share: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not can_share:
            del self.fields["shared"]

    def clean_public_key(self) -> str:
        # Checked here too (the service refuses it as well) so that the warning shows even when
        # another field is wrong, and so that the view knows to blank the field.
        value = self.cleaned_data["public_key"]
        if contains_private_key(value):
            raise forms.ValidationError(PRIVATE_KEY_WARNING, code="private_key")
        return value

    @property
    def holds_private_key(self) -> bool:
        return self.is_bound and contains_private_key(self.data.get("public_key", ""))

    def forget_public_key(self) -> None:
        """Do not send a pasted secret back to the browser in the re-rendered form."""
        data = cast(QueryDict, self.data).copy()  # a mutable copy (a dict's copy in tests)
        data["public_key"] = ""
        self.data = data
