from django import template
from django.utils.safestring import SafeString, mark_safe

from portal.quotas.selectors import LimitUse

register = template.Library()


@register.simple_tag
def limit_use_cells(use: LimitUse) -> SafeString:
    """A limit's three cells on the quotas page (limit, in use, free with its meter), written
    here rather than by an included template, twice a line (the same HTML:
    tests/quotas/test_templatetags.py). Numbers only: nothing to escape."""
    limit, used, free = int(use.limit), int(use.used), int(use.free)
    full = bool(limit and not free)
    meter = ""
    if limit:
        meter = (
            f'<span class="meter{" full" if not free else ""}" title="{use.percent_used}% in use">'
            f'<span style="width:{use.percent_used}%"></span></span>'
        )
    return mark_safe(  # noqa: S308 - integers and constants only
        f'<td class="num">{limit}</td>\n'
        f'<td class="num">{used}</td>\n'
        f'<td class="num"><strong class="{"text-danger" if full else ""}">{free}</strong>'
        f"{meter}</td>"
    )
