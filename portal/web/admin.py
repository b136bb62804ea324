"""Helpers for the operator's admin pages of every app."""

from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.forms import BaseForm
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _


class QuickCheckboxes:
    """Each row's action checkbox as markup, not a form widget rendered through a template:
    the same HTML, without a quarter of a 100-row list's rendering time."""

    def action_checkbox(self, obj: Any) -> SafeString:
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            obj.pk,
            format_html(_("Select this object for an action - {}"), str(obj)),
        )


def admin_form_page(
    request: HttpRequest,
    model_admin: admin.ModelAdmin,
    *,
    title: str,
    form: BaseForm,
    intro: str = "",
    extra: dict[str, Any] | None = None,
) -> TemplateResponse:
    """A form of a staff action in the admin's layout (web/admin_form.html)."""
    return TemplateResponse(
        request,
        "web/admin_form.html",
        {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.model._meta,
            "title": title,
            "form": form,
            "intro": intro,
            **(extra or {}),
        },
    )
