"""Forms of reclaims in the admin. They carry values; services check every rule."""

from __future__ import annotations

from datetime import UTC, datetime, time

from django import forms
from django.utils import timezone

from portal.catalog.models import GpuModel, Region
from portal.reclaims.models import ReclaimPolicy


class DeadlineField(forms.CharField):
    """A UTC time: "2026-12-04 14:00", "2026-12-04T14:00" or just "14:00" (today, UTC)."""

    default_error_messages = {
        "invalid": 'Give the deadline as "HH:MM" (today, UTC) or "YYYY-MM-DD HH:MM" (UTC).'
    }

    def to_python(self, value):
        text = (super().to_python(value) or "").strip().replace("T", " ").removesuffix(" UTC")
        if not text:
            return None
        for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=UTC)
            except ValueError:
                pass
        if len(text) in (5, 8):  # "14:00" or "14:00:00"
            try:
                clock = time.fromisoformat(text)
            except ValueError:
                clock = None
            if clock is None:
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
            today = timezone.now().astimezone(UTC).date()
            return datetime.combine(today, clock).replace(tzinfo=UTC)
        raise forms.ValidationError(self.error_messages["invalid"], code="invalid")


class ReclaimOrderForm(forms.Form):
    region = forms.ModelChoiceField(
        queryset=Region.objects.all(),
        error_messages={"invalid_choice": "Unknown region: choose one of the list."},
    )
    gpu_model = forms.ModelChoiceField(
        queryset=GpuModel.objects.all(),
        label="GPU model",
        error_messages={"invalid_choice": "Unknown GPU model: choose one of the list."},
    )
    gpus = forms.IntegerField(label="GPUs to return")
    deadline = DeadlineField(
        help_text='UTC: "14:00" (today) or "2026-12-04 14:00". The victims end then, or at '
        "the earliest time with full notice if that is later (the order will say so)."
    )
    notice_seconds = forms.IntegerField(
        label="Notice (seconds)",
        required=False,
        help_text="Empty: the policy's notice window. Never below the operator's minimum.",
    )
    reason = forms.CharField(
        required=False,
        max_length=300,
        help_text="Shown to the customers on their instance's timeline.",
    )


class ReclaimPolicyForm(forms.ModelForm):
    class Meta:
        model = ReclaimPolicy
        fields = ["notice_seconds", "order", "preemptible_only", "spare_reserved", "whole_machines"]
