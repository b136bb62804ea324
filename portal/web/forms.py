"""Turning a rule's refusal into what the person sees on a form."""

from django import forms

from portal.lib.errors import ApplicationError


def form_add_application_error(form: forms.BaseForm, error: ApplicationError) -> None:
    """Show `error` on its field when the form has that field, else above the form."""
    form.add_error(error.field if error.field in form.fields else None, error.message)
