"""Forms of billing. They only parse; the rules (what a budget or a credit may be) are services'."""

from django import forms

from portal.billing.models import CreditKind
from portal.orgs.models import Organization


class BudgetForm(forms.Form):
    amount = forms.CharField(
        required=False,
        max_length=20,
        label="Monthly amount",
        help_text="Usage charges of a calendar month, before credits and tax. Leave empty for "
        "no budget.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "e.g. 5000.00"}),
    )
    hard_limit = forms.BooleanField(
        required=False,
        label="Hard limit: refuse new launches once the budget is reached",
        help_text="The owners are told.",
    )
    stop_instances = forms.BooleanField(
        required=False,
        label="With the hard limit, also stop running instances",
        help_text="They are told first, with the notice a reclaim gives (on their page and by "
        "e-mail), and raising the budget during it calls the stop off. Their disks are kept "
        "(stopped instances bill only storage). Without this, running instances keep running.",
    )


class MonthForm(forms.Form):
    month = forms.CharField(
        max_length=7,
        help_text="YYYY-MM, a month that has ended.",
        widget=forms.TextInput(attrs={"placeholder": "2026-03"}),
    )
    organization = forms.ModelChoiceField(
        queryset=Organization.objects.order_by("name"),
        required=False,
        help_text="Empty: every organization with usage in the month and no invoice for it.",
    )


class CreditGrantForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.order_by("name"))
    kind = forms.ChoiceField(choices=CreditKind.choices, initial=CreditKind.CREDIT)
    amount = forms.CharField(max_length=20)
    reason = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required. Shown to the customer on the invoice that uses it.",
    )


class CreditNoteForm(forms.Form):
    amount = forms.CharField(max_length=20)
    reason = forms.CharField(
        required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 3, "cols": 60})
    )


class MarkPaidForm(forms.Form):
    reference = forms.CharField(
        required=False, max_length=200, help_text="Bank transfer reference, or a note."
    )
