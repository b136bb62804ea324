from typing import cast

from django import forms

from portal.catalog.models import GpuModel, Region
from portal.catalog.selectors import active_regions, offered_gpu_models
from portal.quotas.models import Kind


class QuotaRequestForm(forms.Form):
    region = forms.ModelChoiceField(
        queryset=Region.objects.none(),  # the active ones, set in __init__
        to_field_name="code",
        empty_label="Choose a region",
        error_messages={
            "required": "Choose a region.",
            "invalid_choice": "There is no such region. Choose one from the list.",
        },
    )
    gpu = forms.ModelChoiceField(
        queryset=GpuModel.objects.none(),  # the ones on offer, set in __init__
        to_field_name="code",
        label="GPU model",
        empty_label="Choose a GPU model",
        required=False,  # not for a storage limit; clean() asks for it otherwise
        error_messages={
            "required": "Choose a GPU model.",
            "invalid_choice": "There is no such GPU model. Choose one from the list.",
        },
    )
    kind = forms.ChoiceField(
        label="Limit",
        choices=Kind.choices,
        initial=Kind.ON_DEMAND,
        widget=forms.RadioSelect,
        help_text="Preemptible GPUs have their own limit: they are cheaper and can be reclaimed. "
        "Storage is the GB of volumes in the region (no GPU model).",
        error_messages={
            "invalid_choice": "Choose the on-demand or the preemptible limit (or the storage "
            "limit)."
        },
    )
    requested_limit = forms.IntegerField(
        label="New limit (GPUs, or GB for storage)",
        help_text="The total you want to be able to use at once, not an increment.",
        error_messages={
            "required": "Give the limit you want.",
            "invalid": "Give the limit as a whole number of GPUs (or GB for storage).",
        },
        widget=forms.NumberInput(attrs={"min": 0, "step": 1}),
    )
    justification = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5, "class": "prose"}),
        help_text="What workload will run, for how long, and why it needs this many GPUs.",
        error_messages={"required": "Write what the GPUs are for and for how long."},
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["region"]).queryset = active_regions()
        cast(forms.ModelChoiceField, self.fields["gpu"]).queryset = offered_gpu_models()

    def clean(self):
        data = super().clean() or {}
        if data.get("kind") == Kind.STORAGE:
            data["gpu"] = None
        elif "gpu" not in self.errors and not data.get("gpu"):
            self.add_error("gpu", "Choose a GPU model.")
        return data


class AnswerForm(forms.Form):
    message = forms.CharField(
        label="Your answer",
        widget=forms.Textarea(attrs={"rows": 4, "class": "prose"}),
        error_messages={"required": "Write your answer."},
    )
