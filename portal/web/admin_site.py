"""The portal's admin site: Django's, with the list of apps and models (the sidebar of every
admin page) built without reversing two URLs per registered model on every request.

`AdminSite._build_app_dict` reverses each model's changelist and add URLs and each app's index
on every page: about 110 `reverse()` calls for the portal's 52 models, two thirds of building
the list. A URL depends only on the URLconf, the script prefix and the language, so each is
reversed once per process for those; the rest (permissions, names, the order) is Django's own,
rule for rule (tests/web/test_admin_pages.py compares the lists with AdminSite's).

The list itself is kept per process too, for each set of permissions that chose it (a
superuser's, or a staff member's own set of permissions: every ModelAdmin's permission rules
are the user's permissions or constants), with the same URLconf, prefix and language; the
sidebar's HTML (`admin_pages.admin_app_list`) is kept with it, per page path.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib import admin
from django.http import HttpRequest
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse
from django.utils.text import capfirst
from django.utils.translation import get_language

KEPT_LISTS_MAX = 256  # distinct sets of permissions, pages and languages kept per process


class KeptAppList(list):
    """An app list kept between requests, with the sidebar's HTML written from it, per path
    and `show_changelinks` (`html`)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.html: dict[tuple[str, bool], str] = {}


def permissions_key(user: Any) -> tuple:
    """What the app list of `user` depends on: a superuser's are all permissions."""
    if not user.is_active:
        return ("inactive",)
    if user.is_superuser:
        return ("superuser",)
    return ("permissions", frozenset(user.get_all_permissions()))


class PortalAdminSite(admin.AdminSite):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._urls: dict[tuple, str | None] = {}
        self._app_lists: dict[tuple, KeptAppList] = {}

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list:
        key = (
            app_label,
            permissions_key(request.user),
            get_script_prefix(),
            get_urlconf(),
            get_language(),
        )
        kept = self._app_lists.get(key)
        if kept is None:
            kept = KeptAppList(super().get_app_list(request, app_label))
            if len(self._app_lists) >= KEPT_LISTS_MAX:
                self._app_lists.clear()
            self._app_lists[key] = kept
        return kept

    def _url(self, name: str, **kwargs: str) -> str | None:
        key = (
            name,
            tuple(sorted(kwargs.items())),
            get_script_prefix(),
            get_urlconf(),
            get_language(),
        )
        if key not in self._urls:
            try:
                self._urls[key] = reverse(name, kwargs=kwargs or None, current_app=self.name)
            except NoReverseMatch:
                self._urls[key] = None
        return self._urls[key]

    def _build_app_dict(self, request: HttpRequest, label: Any = None) -> dict[str, Any]:
        """AdminSite._build_app_dict (Django 5.2), its URLs from `_url`."""
        app_dict: dict[str, Any] = {}
        if label:
            models = {m: m_a for m, m_a in self._registry.items() if m._meta.app_label == label}
        else:
            models = self._registry
        for model, model_admin in models.items():
            app_label = model._meta.app_label
            has_module_perms = model_admin.has_module_permission(request)
            if not has_module_perms:
                continue
            perms = model_admin.get_model_perms(request)
            if True not in perms.values():
                continue
            info = (app_label, model._meta.model_name)
            model_dict: dict[str, Any] = {
                "model": model,
                "name": capfirst(model._meta.verbose_name_plural),
                "object_name": model._meta.object_name,
                "perms": perms,
                "admin_url": None,
                "add_url": None,
            }
            if perms.get("change") or perms.get("view"):
                model_dict["view_only"] = not perms.get("change")
                model_dict["admin_url"] = self._url("admin:%s_%s_changelist" % info)  # noqa: UP031 - as Django writes it
            if perms.get("add"):
                model_dict["add_url"] = self._url("admin:%s_%s_add" % info)  # noqa: UP031
            if app_label in app_dict:
                app_dict[app_label]["models"].append(model_dict)
            else:
                app_dict[app_label] = {
                    "name": apps.get_app_config(app_label).verbose_name,
                    "app_label": app_label,
                    "app_url": self._url("admin:app_list", app_label=app_label),
                    "has_module_perms": has_module_perms,
                    "models": [model_dict],
                }
        return app_dict
