"""Helpers for the operator's admin pages of every app."""

from typing import Any

from django.contrib import admin
from django.forms import BaseForm
from django.http import HttpRequest
from django.template.response import TemplateResponse


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
