"""The launch form. It only carries values: every rule is checked by services.instance_launch."""

import uuid
from typing import cast

from django import forms

from portal.instances.models import NAME_HELP, NAME_MAX_LENGTH


class AnyChoices(forms.MultipleChoiceField):
    """Checkboxes whose values the service validates (unknown ids get its clear message)."""

    def validate(self, value):
        forms.Field.validate(self, value)


class LaunchForm(forms.Form):
    idempotency_key = forms.CharField(widget=forms.HiddenInput, required=False)
    instance_type = forms.CharField(required=False)  # radio rows rendered by the template
    region = forms.CharField(required=False, widget=forms.Select)
    image = forms.CharField(required=False, widget=forms.Select)
    ssh_keys = AnyChoices(required=False, widget=forms.CheckboxSelectMultiple, label="SSH keys")
    volumes = AnyChoices(required=False, widget=forms.CheckboxSelectMultiple, label="Volumes")
    preemptible = forms.BooleanField(
        required=False,
        label="Preemptible",
        help_text="About half the price. The operator may reclaim it with two minutes' notice "
        "by e-mail; the work on it is then lost.",
    )
    max_price_per_hour = forms.CharField(
        required=False,
        label="Max price per hour (preemptible)",
        help_text="The most it may cost per hour; empty: the on-demand price. If the spot "
        "price rises above it, the instance is reclaimed with notice.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "e.g. 1.50"}),
    )
    name = forms.CharField(
        required=False,
        help_text=NAME_HELP,
        widget=forms.TextInput(
            attrs={
                "maxlength": NAME_MAX_LENGTH,
                "autocomplete": "off",
                "spellcheck": "false",
                "placeholder": "e.g. train-llama-1",
            }
        ),
    )

    def __init__(self, *args, regions=(), images=(), keys=(), volumes=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["region"].widget.choices = [("", "Choose a region")] + [
            (r.code, f"{r.name} ({r.code})") for r in regions
        ]
        self.fields["image"].widget.choices = [("", "Choose an image")] + [
            (i.code, i.name) for i in images
        ]
        cast(forms.ChoiceField, self.fields["ssh_keys"]).choices = [
            (str(k.pk), k.name) for k in keys
        ]
        cast(forms.ChoiceField, self.fields["volumes"]).choices = [
            (str(v.pk), v.name) for v in volumes
        ]
        if not self.is_bound and not self.initial.get("idempotency_key"):
            self.initial["idempotency_key"] = str(uuid.uuid4())
