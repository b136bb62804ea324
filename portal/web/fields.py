"""Model fields for money, typed, with the project's digits and places in one place.

`MoneyField` is an amount to the cent (invoices, credits, budgets); `UnitPriceField` a price per
hour, to a hundredth of a cent (catalog prices, usage intervals, reservations). Both are plain
DecimalFields in the database and in migrations: `deconstruct()` names `models.DecimalField`, so
switching a field to them writes no migration (and a migration's DecimalField(14, 2) is the same
field as a MoneyField()).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from django.db import models
from django.db.models.fields import NOT_PROVIDED

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

    _DecimalField = models.DecimalField
else:

    class _DecimalField(models.DecimalField):
        """DecimalField, subscriptable at run time as it is in the type stubs."""

        def __class_getitem__(cls, params: object) -> type:
            return cls


_ST = TypeVar("_ST", contravariant=True)
_GT = TypeVar("_GT", covariant=True)

MONEY_DIGITS, MONEY_PLACES = 14, 2
UNIT_PRICE_DIGITS, UNIT_PRICE_PLACES = 10, 4


class _FixedDecimalField(_DecimalField[_ST, _GT]):
    digits: ClassVar[int]
    places: ClassVar[int]

    def __init__(
        self,
        verbose_name: StrOrPromise | None = None,
        *,
        null: bool = False,
        blank: bool = False,
        default: Any = NOT_PROVIDED,
        editable: bool = True,
        help_text: StrOrPromise = "",
        validators: Iterable[Callable[[Any], None]] = (),
        max_digits: int | None = None,
        decimal_places: int | None = None,
    ) -> None:
        # Only clone() passes these (from deconstruct()): they must be the class's own.
        if (max_digits or self.digits, decimal_places or self.places) != (
            self.digits,
            self.places,
        ):
            raise ValueError(
                f"{type(self).__name__} has {self.digits} digits, {self.places} places"
            )
        super().__init__(
            verbose_name,
            max_digits=self.digits,
            decimal_places=self.places,
            null=null,
            blank=blank,
            default=default,
            editable=editable,
            help_text=help_text,
            validators=validators,
        )

    def deconstruct(self) -> Any:
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.DecimalField", args, kwargs


class MoneyField(_FixedDecimalField[_ST, _GT]):
    """An amount of money: up to 14 digits, 2 of them cents (what billing rounds to)."""

    digits, places = MONEY_DIGITS, MONEY_PLACES


class UnitPriceField(_FixedDecimalField[_ST, _GT]):
    """A price per hour (per instance- or GPU-hour): up to 10 digits, 4 after the point."""

    digits, places = UNIT_PRICE_DIGITS, UNIT_PRICE_PLACES
