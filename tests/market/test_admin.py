"""The operator's spot price settings in the admin: bad input changes nothing; a price set by
hand is a history row and an audit entry."""

from decimal import Decimal

import pytest
from django.urls import reverse

from portal.audit.models import AuditEntry
from portal.market.models import PriceReason, SpotMarket, SpotPrice

ADD = reverse("admin:market_spotmarket_add")


def _form(catalog, **overrides):
    return {
        "region": catalog.us_east.pk,
        "instance_type": catalog.h100_8x.pk,
        "floor": "6.00",
        "ceiling": "15.00",
        "target_share": "80",
        "max_step": "0.50",
        "currency": "USD",
        "enabled": "on",
        "set_price": "",
        "note": "",
        **overrides,
    }


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"floor": "16.00"}, "floor", "The floor (16.00) is above the ceiling (15.00)."),
        ({"floor": "-1"}, "floor", "The floor cannot be negative."),
        ({"max_step": "-0.5"}, "max_step", "The largest step must be more than 0."),
        ({"max_step": "0"}, "max_step", "The largest step must be more than 0."),
        ({"target_share": "101"}, "target_share", "percentage from 0 to 100"),
        ({"target_share": "-5"}, "target_share", "percentage from 0 to 100"),
        ({"currency": "EUR"}, "currency", "EUR is not accepted"),
        ({"set_price": "20"}, "set_price", "between the floor (6.00) and the ceiling (15.00)"),
    ],
)
def test_bad_settings_are_refused_and_change_nothing(
    client_for, staff, catalog, overrides, field, message
):
    client = client_for(staff)
    response = client.post(ADD, _form(catalog, **overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field])
    assert not SpotMarket.objects.exists()
    assert not SpotPrice.objects.exists()


def test_staff_set_a_price_by_hand_audited(client_for, staff, catalog):
    client = client_for(staff)
    response = client.post(ADD, _form(catalog, set_price="7.5", note="launch promotion"))
    assert response.status_code == 302
    market = SpotMarket.objects.get()
    (row,) = SpotPrice.objects.all()
    assert row.price == Decimal("7.5000")
    assert row.reason == PriceReason.MANUAL and row.set_by == staff
    assert row.detail == "launch promotion"
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"market.settings_changed", "market.price_set"} <= actions
    page = client.get(reverse("admin:market_spotmarket_change", args=[market.pk]))
    assert "7.5000 USD since" in page.content.decode()
