from typing import cast

from django import forms

from portal.catalog.models import Region
from portal.catalog.selectors import active_regions
from portal.volumes.models import NAME_HELP, NAME_MAX_LENGTH


class VolumeCreateForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_MAX_LENGTH,
        help_text=NAME_HELP,
        error_messages={"required": "Give the volume a name."},
    )
    region = forms.ModelChoiceField(
        queryset=Region.objects.none(),  # the active ones, set in __init__
        to_field_name="code",
        empty_label="Choose a region",
        error_messages={
            "required": "Choose a region.",
            "invalid_choice": "There is no such region. Choose one from the list.",
        },
    )
    size_gb = forms.IntegerField(
        label="Size (GB)",
        help_text="A whole number of GB. A volume can grow later, never shrink.",
        error_messages={
            "required": "Give the size in GB.",
            "invalid": "Give the size as a whole number of GB.",
        },
        widget=forms.NumberInput(attrs={"min": 1, "step": 1}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["region"]).queryset = active_regions()


class VolumeResizeForm(forms.Form):
    size_gb = forms.IntegerField(
        label="New size (GB)",
        error_messages={
            "required": "Give the new size in GB.",
            "invalid": "Give the size as a whole number of GB.",
        },
        widget=forms.NumberInput(attrs={"min": 1, "step": 1}),
    )


class VolumeDeleteForm(forms.Form):
    confirm_name = forms.CharField(
        label="Type the volume's name to confirm",
        error_messages={"required": "Type the volume's name to confirm."},
    )
