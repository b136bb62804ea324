"""Money as people read it, in pages and e-mails: the one format of the portal (issue 19).

- An amount (a total, a balance, a month's spend) is shown to the cent: `$1,234.56`.
- A price is shown with its unit: `$2.49/hour`, `$1.85/GPU-hour`, `$0.02/hour`. Prices are
  stored and billed with up to 4 decimals (a spot price such as 1.2345, a disk price such as
  0.0125), so a price keeps those decimals where it has them and shows at least cents:
  `2.4900` → `$2.49`, `0.0125` → `$0.0125`. What is shown is what is billed.
- A currency with a symbol is written with it in front (`$`, `€`, `£`); any other with its code
  after the number (`12.00 CHF`, `2.49 CHF/hour`).

Decimal only, never float. The API's JSON keeps its own machine-readable decimal strings.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
PRICE_PLACES = 4  # the places of a UnitPriceField: what a price is stored and billed with
_PRICE_QUANTUM = Decimal(1).scaleb(-PRICE_PLACES)
_CENT = Decimal("0.01")


def _with_currency(digits: str, currency: str, *, negative: bool) -> str:
    sign = "−" if negative else ""
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{digits} {currency}"


def format_amount(amount: Decimal, currency: str) -> str:
    """$1,234.56 / €12.00 / 12.00 CHF; negative amounts with a minus sign in front. To the cent,
    half up, as billing rounds (an amount billing rounded already shows as it is)."""
    cents = abs(Decimal(amount)).quantize(_CENT, rounding=ROUND_HALF_UP)
    return _with_currency(f"{cents:,.2f}", currency, negative=amount < 0)


def price_digits(amount: Decimal) -> str:
    """A price's number without currency: at least two decimals, up to four where the price has
    them (rounded half up beyond), thousands separated: 2.4900 → 2.49, 0.0125 → 0.0125."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be Decimal, not {type(amount).__name__}")
    value = abs(amount).quantize(_PRICE_QUANTUM, rounding=ROUND_HALF_UP).normalize()
    exponent = value.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return f"{value:,.{max(2, places)}f}"


def format_price(amount: Decimal, currency: str, per: str | None = "hour") -> str:
    """$2.49/hour, $1.85/GPU-hour, $0.0125/hour, 2.49 CHF/hour; `per=None`: $2.49 alone (for a
    column whose heading names the unit)."""
    text = _with_currency(price_digits(amount), currency, negative=amount < 0)
    return f"{text}/{per}" if per else text
