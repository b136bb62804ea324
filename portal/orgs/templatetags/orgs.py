from django import template

register = template.Library()


@register.filter
def can(membership, permission: str) -> bool:
    """`{% if current_membership|can:"billing.view" %}`: the role table, in templates."""
    return bool(membership) and membership.can(permission)
