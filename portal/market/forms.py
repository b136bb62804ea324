"""The capacity alert form: it only carries values; services.capacity_alert_create checks them."""

from django import forms


class CapacityAlertForm(forms.Form):
    instance_type = forms.CharField(required=False, widget=forms.Select)
    region = forms.CharField(required=False, widget=forms.Select)
    count = forms.CharField(
        required=False, initial="1", label="How many", widget=forms.NumberInput(attrs={"min": 1})
    )
    max_price = forms.CharField(
        required=False,
        label="At a spot price of at most (optional)",
        help_text="Per hour; empty: whatever the spot price is.",
    )
    next = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, offers=(), **kwargs):
        super().__init__(*args, **kwargs)
        types = {}
        regions = {}
        for offer in offers:
            types[offer.instance_type.code] = offer.instance_type.name
            for region in offer.regions:
                regions[region.code] = f"{region.name} ({region.code})"
        self.fields["instance_type"].widget.choices = [("", "Choose a type"), *types.items()]
        self.fields["region"].widget.choices = [("", "Choose a region"), *sorted(regions.items())]
