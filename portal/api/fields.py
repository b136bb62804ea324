"""Serializer pieces for a JSON API that says no to what it does not expect.

DRF is lenient by default: "12" is an integer, 1 is true, 12 is a string, and unknown fields are
ignored. A client with a bug should hear about it, so here wrong JSON types are refused, and a
StrictSerializer refuses fields it does not know (code "unknown_field").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from rest_framework import serializers

from portal.web.fields import MONEY_DIGITS, MONEY_PLACES, UNIT_PRICE_DIGITS, UNIT_PRICE_PLACES

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

INT64_MAX = 2**63 - 1


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "A whole number is required."}

    def to_internal_value(self, data):
        if isinstance(data, float) and data.is_integer():
            data = int(data)
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictChoiceField(serializers.ChoiceField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


class StrictSerializer(serializers.Serializer):
    # Refuses unknown fields and a body that is not a JSON object (no docstring: it would
    # become the description of every request body in the OpenAPI document).

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            known = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(str(key) for key in data if key not in known)
            if unknown:
                raise serializers.ValidationError(
                    {
                        key: [
                            serializers.ErrorDetail(
                                "Unknown field. Known fields: " + ", ".join(sorted(known)) + ".",
                                code="unknown_field",
                            )
                        ]
                        for key in unknown[:20]
                    }
                )
        return super().to_internal_value(data)


class NoFieldsSerializer(StrictSerializer):
    """For actions that take no body: an unexpected field is refused rather than ignored."""


class MoneyField(serializers.DecimalField):
    """An amount of money as a decimal string to the cent (the model's MoneyField)."""

    def __init__(
        self,
        *,
        source: str | None = None,
        allow_null: bool = False,
        help_text: StrOrPromise | None = None,
    ) -> None:
        super().__init__(
            max_digits=MONEY_DIGITS,
            decimal_places=MONEY_PLACES,
            source=source,
            allow_null=allow_null,
            help_text=help_text,
        )


class UnitPriceField(serializers.DecimalField):
    """A price per hour as a decimal string, 4 places (the model's UnitPriceField)."""

    def __init__(
        self,
        *,
        source: str | None = None,
        allow_null: bool = False,
        help_text: StrOrPromise | None = None,
    ) -> None:
        super().__init__(
            max_digits=UNIT_PRICE_DIGITS,
            decimal_places=UNIT_PRICE_PLACES,
            source=source,
            allow_null=allow_null,
            help_text=help_text,
        )
