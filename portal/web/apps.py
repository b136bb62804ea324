from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class WebConfig(AppConfig):
    name = "portal.web"
    label = "web"
    verbose_name = "Web"


class PortalAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the portal's site (portal/web/admin_site.py)."""

    default = False  # named in INSTALLED_APPS; portal.web's own is WebConfig
    default_site = "portal.web.admin_site.PortalAdminSite"
