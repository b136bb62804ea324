"""Forms of the operator's side. They carry values; services check every rule."""

from django import forms

from portal.orgs.models import Organization


class SuspendForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.all())
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 70}),
        help_text="The organization's owners read this in the e-mail and on its pages.",
    )
    stop_instances = forms.BooleanField(
        required=False,
        label="Also stop its running instances",
        help_text="Disks are kept; stopped instances bill only storage.",
    )


class LiftForm(forms.Form):
    note = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
        help_text="Optional; included in the e-mail to the owners.",
    )


class StaffTerminateForm(forms.Form):
    reason = forms.CharField(
        max_length=400,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
        help_text="The customer sees this on the instance's page.",
    )
