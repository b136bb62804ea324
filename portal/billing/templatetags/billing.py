from decimal import Decimal

from django import template
from django.conf import settings

from portal.billing.money import Money, format_amount

register = template.Library()


@register.filter
def money(value, currency: str = "") -> str:
    """`{{ amount|money:"USD" }}` or `{{ money_object|money }}` → $1,234.56."""
    if value is None or value == "":
        return ""
    if isinstance(value, Money):
        return str(value)
    if not isinstance(value, Decimal):
        value = Decimal(str(value))
    return format_amount(value, currency or settings.CURRENCY)


@register.filter
def hours(value, places: int = 2) -> str:
    """Decimal hours with a thousands separator: 1,234.50."""
    if value is None:
        return ""
    return f"{Decimal(value):,.{int(places)}f}"


@register.filter
def unit_price(value) -> str:
    """An hourly price with at least two and at most four decimals: 2.49, 0.0125."""
    value = Decimal(value).normalize()
    exponent = -value.as_tuple().exponent if value.as_tuple().exponent < 0 else 0
    return f"{value:,.{max(2, min(4, exponent))}f}"


@register.filter
def seconds_hours(value) -> str:
    """Seconds as hours with two decimals: 5400 → 1.50."""
    return f"{Decimal(int(value)) / Decimal(3600):,.2f}"
