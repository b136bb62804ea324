"""Form helpers: turning a rule's refusal into what the person sees on a form, and a choice
field whose choices are written in the code."""

from typing import Any

from django import forms

from portal.lib.errors import ApplicationError


def form_add_application_error(form: forms.BaseForm, error: ApplicationError) -> None:
    """Show `error` on its field when the form has that field, else above the form."""
    form.add_error(error.field if error.field in form.fields else None, error.message)


class KeptChoiceField(forms.ChoiceField):
    """A choice field whose choices are written in the code and never change (the audit log's
    hundred actions): every form's copy of the field shares them, where Django deep-copies
    them for each form made (half a millisecond for a hundred)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> "KeptChoiceField":
        # Field's copy (the widget, messages and validators), not ChoiceField's, which adds a
        # deep copy of the choices.
        result = forms.Field.__deepcopy__(self, memo)  # type: ignore[attr-defined]  # not in the stubs
        assert isinstance(result, KeptChoiceField)
        return result
