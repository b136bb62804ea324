import json

from django import template

from portal.audit.models import ActorKind

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
