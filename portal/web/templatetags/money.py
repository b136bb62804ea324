"""The money filters of every page and e-mail: `{% load money %}` (formats: portal.lib.money).

- `{{ amount|money }}` or `{{ amount|money:currency }}` → `$1,234.56` (to the cent; a
  `Money` renders with its own currency);
- `{{ price|per_hour:currency }}` → `$2.49/hour`; `{{ price|per_gpu_hour:currency }}` →
  `$1.85/GPU-hour`; `{{ price|price:currency }}` → `$2.49` (for a column headed with the unit);
- `{{ price|unit_price }}` → `2.49`, a price's number alone, for a table headed with the currency.

The currency defaults to settings.CURRENCY. An empty value renders as "".
"""

from decimal import Decimal
from typing import Any

from django import template
from django.conf import settings

from portal.lib.money import format_amount, format_price, price_digits

register = template.Library()


def _decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


@register.filter
def money(value: Any, currency: str = "") -> str:
    """An amount to the cent: $1,234.56 (a `Money`: its own amount and currency)."""
    if value is None or value == "":
        return ""
    if hasattr(value, "amount") and hasattr(value, "currency"):  # portal.billing.money.Money
        return format_amount(value.amount, value.currency)
    return format_amount(_decimal(value), currency or settings.CURRENCY)


@register.filter
def price(value: Any, currency: str = "") -> str:
    """A price without its unit: $2.49, $0.0125."""
    if value is None or value == "":
        return ""
    return format_price(_decimal(value), currency or settings.CURRENCY, per=None)


@register.filter
def per_hour(value: Any, currency: str = "") -> str:
    """A price per hour: $2.49/hour, $0.0125/hour."""
    if value is None or value == "":
        return ""
    return format_price(_decimal(value), currency or settings.CURRENCY, per="hour")


@register.filter
def per_gpu_hour(value: Any, currency: str = "") -> str:
    """A price per GPU-hour: $1.85/GPU-hour."""
    if value is None or value == "":
        return ""
    return format_price(_decimal(value), currency or settings.CURRENCY, per="GPU-hour")


@register.filter
def unit_price(value: Any) -> str:
    """A price's number alone: 2.49, 0.0125 (the table's heading names the currency)."""
    if value is None or value == "":
        return ""
    return price_digits(_decimal(value))


@register.simple_tag
def currency_code() -> str:
    """The portal's currency (settings.CURRENCY), for a script that formats money as the
    filters do: `data-currency="{% currency_code %}"`."""
    return str(settings.CURRENCY)
