from django import forms

from portal.webhooks.models import URL_MAX_LENGTH, EventType


class EventTypesField(forms.MultipleChoiceField):
    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs):
        super().__init__(
            choices=EventType.choices,
            label="Events",
            error_messages={"required": "Choose at least one event."},
            **kwargs,
        )


class WebhookEndpointForm(forms.Form):
    # A CharField, not a URLField: the service checks the URL and says why one is refused.
    url = forms.CharField(
        label="Endpoint URL",
        max_length=URL_MAX_LENGTH,
        widget=forms.TextInput(
            attrs={"placeholder": "https://example.com/backfill/events", "autocomplete": "off"}
        ),
        error_messages={"required": "Give the URL that receives the events."},
        help_text="HTTPS. Backfill POSTs JSON and expects a 2xx answer within 10 seconds.",
    )
    description = forms.CharField(max_length=200, required=False)
    event_types = EventTypesField(initial=[EventType.INSTANCE_STATE_CHANGED])


class WebhookEndpointEditForm(forms.Form):
    description = forms.CharField(max_length=200, required=False)
    event_types = EventTypesField()
    active = forms.BooleanField(
        label="Enabled", required=False, help_text="Disabled endpoints receive nothing."
    )
