from functools import lru_cache

from django import template
from django.conf import settings
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from portal.orgs.models import Membership

register = template.Library()

# Stands for the organization's slug while the navigation is rendered once for every
# organization (a slug is letters, digits and hyphens: what URLs take as they are).
NAV_SLUG = "org-nav-slug-0x7f3a"


@register.filter
def can(membership, permission: str) -> bool:
    """`{% if current_membership|can:"billing.view" %}`: the role table, in templates."""
    return bool(membership) and membership.can(permission)


@register.simple_tag(takes_context=True)
def org_nav(context) -> SafeString:
    """`{% org_nav %}`: the current organization's navigation (includes/org_nav.html).

    What it shows depends on the member's role (the links it may follow) and on the page
    (which link is active) only, so it is rendered once per role and page name, not on every
    page view (14 links, their icons, URLs and permissions: about 4,500 Python calls, a fifth
    of an instance list page's)."""
    match = context["request"].resolver_match
    membership = context.get("current_membership")
    role = membership.role if membership else None
    url_name, app_name = (match.url_name, match.app_name) if match else (None, None)
    render = _render_nav.__wrapped__ if settings.DEBUG else _render_nav  # edits show at once
    html = render(role, url_name, app_name)
    return mark_safe(html.replace(NAV_SLUG, context["current_organization"].slug))  # noqa: S308


@lru_cache(maxsize=1024)
def _render_nav(role: str | None, url_name: str | None, app_name: str | None) -> str:
    membership = Membership(role=role) if role else None
    return render_to_string(
        "includes/org_nav.html",
        {"org": NAV_SLUG, "name": url_name, "app": app_name, "current_membership": membership},
    )
