"""Forms of reserved capacity. They carry values; services check every rule."""

from datetime import timedelta

from django import forms
from django.utils import timezone

from portal.catalog.models import GpuModel, Region
from portal.orgs.models import Organization
from portal.reservations.services import MAX_MONTHS

DATETIME = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class ReservationForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.all())
    region = forms.ModelChoiceField(queryset=Region.objects.filter(active=True))
    gpu_model = forms.ModelChoiceField(queryset=GpuModel.objects.all(), label="GPU model")
    gpus = forms.IntegerField(label="GPUs", min_value=1)
    start = forms.DateTimeField(widget=DATETIME, help_text="UTC.")
    end = forms.DateTimeField(widget=DATETIME, help_text="UTC.")
    price_per_gpu_hour = forms.DecimalField(
        label="Committed price per GPU-hour", min_value=0, max_digits=10, decimal_places=4
    )


class QuoteForm(forms.Form):
    price_per_gpu_hour = forms.DecimalField(
        label="Price per GPU-hour", min_value=0, max_digits=10, decimal_places=4
    )
    note = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
        help_text="Optional; e-mailed with the quote.",
    )
    valid_until = forms.DateField(
        required=False,
        label="Quote valid until",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=(
            "Optional; by default the quote holds for RESERVATION_QUOTE_VALID_DAYS days (never "
            "past the reservation's start). The customer is reminded before it expires."
        ),
    )


class ReservationRequestForm(forms.Form):
    region = forms.ModelChoiceField(
        queryset=Region.objects.filter(active=True), to_field_name="code", empty_label="Choose…"
    )
    gpu_model = forms.ModelChoiceField(
        queryset=GpuModel.objects.all(),
        to_field_name="code",
        label="GPU model",
        empty_label="Choose…",
    )
    gpus = forms.IntegerField(label="GPUs", min_value=1, max_value=100_000)
    start_date = forms.DateField(
        label="From", widget=forms.DateInput(attrs={"type": "date"}), help_text="UTC midnight."
    )
    months = forms.IntegerField(min_value=1, max_value=MAX_MONTHS, initial=3)
    note = forms.CharField(
        required=False,
        label="What is it for?",
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["start_date"].initial = (timezone.now() + timedelta(days=14)).date()
