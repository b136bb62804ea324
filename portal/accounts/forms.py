from django import forms

from portal.accounts.services import time_zone_names
from portal.notifications.registry import CATEGORIES


class NotificationSettingsForm(forms.Form):
    wanted = forms.MultipleChoiceField(
        label="Send me an e-mail when",
        choices=list(CATEGORIES.items()),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    time_zone = forms.ChoiceField(
        label="Time zone",
        help_text="Times on pages and in e-mails are shown in it. Invoices stay in UTC.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        time_zone = self.fields["time_zone"]
        assert isinstance(time_zone, forms.ChoiceField)
        time_zone.choices = [(name, name) for name in time_zone_names()]
