from datetime import date

from django import forms

from portal.audit.actions import ACTIONS, GROUPS, action_group
from portal.web.forms import KeptChoiceField
from portal.web.widgets import KeptSelect


def action_choices() -> list:
    """Every group first ("all instance actions"), then the codes, under their group."""
    choices: list = [("", "All actions")]
    for group, group_label in GROUPS.items():
        codes = [(code, label) for code, label in ACTIONS.items() if action_group(code) == group]
        choices.append((group_label, [(group, f"All: {group_label.lower()}"), *codes]))
    return choices


# The last day a filter may name: the day after it (the end of an "until" day) overflows datetime.
LAST_DAY = date(9999, 12, 30)


class AuditFilterForm(forms.Form):
    # The actions are a table in the code: their choices and their select's HTML are made once.
    action = KeptChoiceField(choices=action_choices(), required=False, widget=KeptSelect)
    actor = forms.CharField(
        required=False,
        max_length=254,
        label="Actor",
        widget=forms.TextInput(attrs={"placeholder": "e-mail contains…", "type": "search"}),
    )
    since = forms.DateField(required=False, label="From", widget=forms.DateInput({"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput({"type": "date"}))

    def _a_day_the_calendar_holds(self, name: str) -> date | None:
        day = self.cleaned_data.get(name)
        if day and day > LAST_DAY:
            raise forms.ValidationError(f"Give a day up to {LAST_DAY.isoformat()}.")
        return day

    def clean_since(self):
        return self._a_day_the_calendar_holds("since")

    def clean_until(self):
        return self._a_day_the_calendar_holds("until")

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until < since:
            self.add_error("until", "The end date is before the start date.")
        return cleaned

    def filters(self) -> dict:
        """The filters that passed validation; a bad field is shown as an error and ignored."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {
            "action": data.get("action") or "",
            "actor": (data.get("actor") or "").strip(),
            "since": data.get("since"),
            "until": data.get("until"),
        }
