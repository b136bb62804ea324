from django import template
from django.template import Context
from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import template_localtime  # type: ignore[attr-defined]  # not in the stubs

from portal.sshkeys.models import SshKey
from portal.web.html import day_text, escaped, truncated, url_with_id

register = template.Library()

SHARED = '<span class="badge accent">shared</span>'
YOURS = '<span class="badge">you</span>'


@register.simple_tag(takes_context=True)
def sshkey_row(context: Context, key: SshKey, org_slug: str, deletable: set[int]) -> SafeString:
    """One `<tr>` of the SSH key list: its cells written here rather than by some twenty
    template nodes a row (the same HTML: tests/sshkeys/test_templatetags.py).

    Every value from the database goes through escaped()."""
    e = escaped
    name = e(key.name)
    comment = key.comment
    if comment:
        name_cell = (
            f'<strong>{name}</strong><br><span class="muted" style="font-size:.82rem">'
            f"{e(truncated(comment, 40))}</span>"
        )
    else:
        name_cell = f"<strong>{name}</strong>"
    if key.is_shared:
        owner = SHARED
    elif key.user_id == context["user"].id:
        owner = YOURS
    else:
        assert key.user is not None  # a key is shared or has its member
        owner = f'<span title="{e(key.user.email)}">{e(key.user.display_name)}</span>'
    delete = ""
    if key.pk in deletable:
        url = url_with_id(context, "sshkeys:delete", org_slug, pk=key.pk)
        delete = (
            f'<a class="btn danger outline small" href="{e(url)}" aria-label="Delete {name}">'
            "Delete</a>"
        )
    added = day_text(context, template_localtime(key.created_at, context.use_tz))
    return mark_safe(  # noqa: S308 - constants and escaped values only
        f"<tr><td>{name_cell}</td>"
        f'<td class="hide-sm"><span class="badge">{e(key.type_label)}</span></td>'
        f'<td><span class="mono" title="{e(key.public_key)}">{e(key.fingerprint)}</span></td>'
        f'<td style="white-space:nowrap">{owner}</td>'
        f'<td class="hide-sm muted" style="white-space:nowrap">{e(added)}</td>'
        f'<td class="num">{delete}</td></tr>'
    )
