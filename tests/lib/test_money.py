"""The one money format of pages and e-mails (portal.lib.money, issue 19)."""

from decimal import Decimal

import pytest

from portal.lib.money import format_amount, format_price, price_digits


@pytest.mark.parametrize(
    ("amount", "currency", "per", "shown"),
    [
        ("2.4900", "USD", "hour", "$2.49/hour"),
        ("1.8500", "USD", "GPU-hour", "$1.85/GPU-hour"),
        ("0.0200", "USD", "hour", "$0.02/hour"),
        ("0.0125", "USD", "hour", "$0.0125/hour"),  # a disk price: what is billed, not $0.01
        ("1.2345", "USD", "hour", "$1.2345/hour"),  # a spot price keeps its 4 places
        ("1.2", "USD", "hour", "$1.20/hour"),
        ("3", "USD", "hour", "$3.00/hour"),
        ("1.23456", "USD", "hour", "$1.2346/hour"),  # an average beyond 4 places: half up
        ("1234.5", "USD", "hour", "$1,234.50/hour"),
        ("1.99", "EUR", "hour", "€1.99/hour"),
        ("1.99", "GBP", "GPU-hour", "£1.99/GPU-hour"),
        ("1.99", "CHF", "hour", "1.99 CHF/hour"),  # no symbol: the code after the number
        ("2.49", "USD", None, "$2.49"),  # for a column whose heading names the unit
        ("-0.5", "USD", None, "−$0.50"),
    ],
)
def test_a_price_reads_with_its_unit(amount, currency, per, shown):
    assert format_price(Decimal(amount), currency, per=per) == shown


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("14541.6", "USD", "$14,541.60"),
        ("0.005", "USD", "$0.01"),
        ("12", "EUR", "€12.00"),
        ("3", "CHF", "3.00 CHF"),
        ("-3.5", "USD", "−$3.50"),
    ],
)
def test_an_amount_reads_to_the_cent(amount, currency, shown):
    assert format_amount(Decimal(amount), currency) == shown


def test_a_price_number_alone_and_no_float():
    assert price_digits(Decimal("2.4900")) == "2.49"
    assert price_digits(Decimal("0.0125")) == "0.0125"
    with pytest.raises(TypeError):
        price_digits(2.49)  # type: ignore[arg-type]
