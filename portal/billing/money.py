"""Money: a Decimal amount with its currency. Never a float; rounded once, half up, to cents."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from portal.lib.money import format_amount

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
SECONDS_PER_HOUR = Decimal(3600)


def cents(amount: Decimal) -> Decimal:
    """Round to cents, half up: the single rounding step of billing."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be Decimal, not {type(amount).__name__}")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError(f"money must be Decimal, not {type(self.amount).__name__}")

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def rounded(self) -> Money:
        return Money(cents(self.amount), self.currency)

    def __str__(self) -> str:
        return format_amount(self.amount, self.currency)
