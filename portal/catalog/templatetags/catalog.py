from decimal import Decimal

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma

register = template.Library()

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


@register.filter
def money(value: Decimal | None, currency: str = "USD") -> str:
    """`2.4900` → `$2.49`, `0.0125` → `$0.0125`, `14541.60` → `$14,541.60`.

    At least two decimals; more only where the catalog price has them.
    """
    if value is None:
        return "—"
    amount = Decimal(value)
    if amount == amount.quantize(Decimal("0.01")):
        text = f"{amount.quantize(Decimal('0.01')):f}"
    else:
        text = f"{amount.normalize():f}"
    whole, _, fraction = text.partition(".")
    text = f"{intcomma(int(whole))}.{fraction}"
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


@register.filter
def gigabytes(value: int) -> str:
    """Memory and disk sizes: `225` → `225 GB`, `22000` → `22 TB`."""
    if value >= 1000 and value % 1000 == 0:
        return f"{value // 1000} TB"
    if value >= 1000:
        return f"{value / 1000:.1f} TB"
    return f"{value} GB"


@register.filter
def note_for(notes: dict, instance_type_id: int) -> str:
    """The catalog page's note on an offer (portal.catalog.insights), or ""."""
    return notes.get(instance_type_id, "") if notes else ""
