from typing import cast

from django import forms

from portal.catalog.models import GpuModel, Region
from portal.catalog.selectors import active_regions, offered_gpu_models


class CatalogFilterForm(forms.Form):
    """The catalog's filters, read from the query string (`?region=us-east-1&gpu=h100`)."""

    region = forms.ModelChoiceField(
        queryset=Region.objects.none(),
        to_field_name="code",
        required=False,
        empty_label="All regions",
        error_messages={"invalid_choice": "There is no active region with that code."},
    )
    gpu = forms.ModelChoiceField(
        queryset=GpuModel.objects.none(),
        to_field_name="code",
        required=False,
        empty_label="All GPU models",
        label="GPU model",
        error_messages={"invalid_choice": "There is no GPU model with that code on offer."},
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["region"]).queryset = active_regions()
        cast(forms.ModelChoiceField, self.fields["gpu"]).queryset = offered_gpu_models()

    def filters(self) -> dict:
        """The filters that are valid; an unknown code filters nothing (and shows an error)."""
        if not self.is_bound:
            return {"region": None, "gpu_model": None}
        self.is_valid()
        data = self.cleaned_data
        return {"region": data.get("region"), "gpu_model": data.get("gpu")}
