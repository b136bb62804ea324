import json

from django import template
from django.template import Context
from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import template_localtime  # type: ignore[attr-defined]  # not in the stubs

from portal.audit.models import ActorKind, AuditEntry
from portal.web.html import NONE, day_text, escaped, truncated

register = template.Library()

TARGET_NAMES = {
    "accounts.user": "user",
    "orgs.organization": "organization",
    "orgs.invitation": "invitation",
    "orgs.membership": "membership",
}


@register.filter
def detail_items(detail) -> list[tuple[str, str]]:
    """An entry's detail as (key, short text) pairs for a table cell, keys in a steady order.

    PostgreSQL's jsonb does not keep the order of keys; "from" and "to" become one "a → b" line.
    """
    if not isinstance(detail, dict):
        return []
    detail = dict(detail)
    items = []
    if "from" in detail and "to" in detail:
        items.append(("", f"{_text(detail.pop('from'))} → {_text(detail.pop('to'))}"))
    items.extend((str(key).replace("_", " "), _text(detail[key])) for key in sorted(detail))
    return items


def _text(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:79] + "…"


@register.filter
def target_name(target_type: str) -> str:
    """ "sshkeys.sshkey" → "sshkey": the model part, or a friendlier word for the common ones."""
    return TARGET_NAMES.get(target_type, target_type.rsplit(".", 1)[-1].replace("_", " "))


@register.filter
def actor_kind_badge(kind: str) -> str:
    """Words for a badge beside the actor; none for a plain user."""
    return "" if kind == ActorKind.USER else dict(ActorKind.choices).get(kind, kind)


BADGE_TONES: dict[str, str] = {ActorKind.STAFF: " warn", ActorKind.API_TOKEN: " accent"}


@register.simple_tag(takes_context=True)
def audit_row(context: Context, entry: AuditEntry) -> SafeString:
    """One `<tr>` of the audit log, the page's hot loop: its cells written here rather than by
    some thirty template nodes a row (the same HTML: tests/audit/test_templatetags.py).

    Every value from the database goes through escaped()."""
    e = escaped
    at = template_localtime(entry.at, context.use_tz)
    who = entry.actor_display
    actor = f'<span title="{e(entry.actor_label)}">{e(truncated(who, 40))}</span>' if who else ""
    kind = actor_kind_badge(entry.actor_kind)
    if kind and entry.actor_kind != ActorKind.SYSTEM:
        actor += f' <span class="badge{BADGE_TONES.get(entry.actor_kind, "")}">{e(kind)}</span>'
    if entry.target_type:
        target = (
            f'<td><span title="{e(entry.target_label)}">'
            f"{e(truncated(entry.target_label, 48))}</span><br>"
            f'<span class="muted small">{e(target_name(entry.target_type))}</span></td>'
        )
    else:
        target = f'<td class="blank">{NONE}</td>'
    ip = f'<span class="mono">{e(entry.ip)}</span>' if entry.ip else NONE
    details = "".join(
        f"<div>{_detail_key(key)}{e(value)}</div>" for key, value in detail_items(entry.detail)
    )
    return mark_safe(  # noqa: S308 - constants and escaped values only
        f'<tr data-action="{e(entry.action)}">'
        f'<td class="when" title="{at.isoformat()}">'
        f"{e(day_text(context, at))}<br>"
        f'<span class="muted mono">{at.hour:02d}:{at.minute:02d}:{at.second:02d}</span></td>'
        f"<td><strong>{e(entry.action_label)}</strong><br>"
        f'<span class="code mono">{e(entry.action)}</span></td>'
        f'<td class="actor">{actor}</td>'
        f"{target}"
        f'<td class="hide-sm">{ip}</td>'
        f'<td class="detail{"" if entry.detail else " blank"}">{details or NONE}</td>'
        "</tr>"
    )


def _detail_key(key: str) -> str:
    return f'<span class="muted">{escaped(key)}</span> ' if key else ""
