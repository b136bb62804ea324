from decimal import Decimal

from django import template

from portal.web.templatetags import money as money_filters

register = template.Library()

# The one money format (portal.lib.money, issue 19): `{% load billing %}` keeps offering the
# `money` and `unit_price` filters, the very ones of `{% load money %}`.
register.filter("money", money_filters.money)
register.filter("unit_price", money_filters.unit_price)


@register.filter
def hours(value, places: int = 2) -> str:
    """Decimal hours with a thousands separator: 1,234.50."""
    if value is None:
        return ""
    return f"{Decimal(value):,.{int(places)}f}"


@register.filter
def seconds_hours(value) -> str:
    """Seconds as hours with two decimals: 5400 → 1.50."""
    return f"{Decimal(int(value)) / Decimal(3600):,.2f}"
