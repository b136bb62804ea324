"""The cluster launch form. It only carries values: every rule is checked by
services.cluster_launch."""

import uuid
from typing import cast

from django import forms

from portal.clusters.models import NAME_HELP, NAME_MAX_LENGTH
from portal.instances.forms import AnyChoices


class ClusterLaunchForm(forms.Form):
    idempotency_key = forms.CharField(widget=forms.HiddenInput, required=False)
    name = forms.CharField(
        required=False,
        help_text=NAME_HELP,
        widget=forms.TextInput(
            attrs={
                "maxlength": NAME_MAX_LENGTH,
                "autocomplete": "off",
                "spellcheck": "false",
                "placeholder": "e.g. pretrain-7b",
            }
        ),
    )
    instance_type = forms.CharField(required=False, widget=forms.Select, label="Node type")
    region = forms.CharField(required=False, widget=forms.Select)
    nodes = forms.CharField(
        required=False,
        label="Nodes",
        widget=forms.NumberInput(attrs={"min": 2, "step": 1, "inputmode": "numeric"}),
    )
    image = forms.CharField(required=False, widget=forms.Select)
    ssh_keys = AnyChoices(required=False, widget=forms.CheckboxSelectMultiple, label="SSH keys")
    volumes = AnyChoices(required=False, widget=forms.CheckboxSelectMultiple, label="Volumes")
    preemptible = forms.BooleanField(
        required=False,
        label="Preemptible",
        help_text="About half the price. The operator may reclaim it with two minutes' notice; "
        "a cluster is reclaimed whole.",
    )

    def __init__(
        self, *args, offers=(), regions=(), images=(), keys=(), volumes=(), max_nodes=16, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.fields["instance_type"].widget.choices = [("", "Choose a node type")] + [
            (o.instance_type.code, f"{o.instance_type.name} · {o.instance_type.gpu_count} GPU")
            for o in offers
        ]
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
        self.fields["nodes"].widget.attrs["max"] = max_nodes
        self.fields["nodes"].help_text = f"From 2 to {max_nodes}, placed together on one fabric."
        if not self.is_bound:
            self.initial.setdefault("nodes", 2)
            if not self.initial.get("idempotency_key"):
                self.initial["idempotency_key"] = str(uuid.uuid4())
