"""Bids: a preemptible launch's max price per hour, refused below the spot price now (with that
price in the message) and for every kind of bad input, with nothing written; raised later."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.audit.models import AuditEntry
from portal.instances import services
from portal.instances.models import Instance
from portal.lib.errors import ApplicationError
from portal.market.models import PriceReason, SpotPrice
from portal.market.services import spot_price_history_add


@pytest.fixture
def spot(catalog):
    """The 1x H100 in us-east-1 at 1.5000 per hour on the spot market."""
    (row,) = spot_price_history_add(
        rows=[
            SpotPrice(
                region=catalog.us_east,
                instance_type=catalog.h100_1x,
                price=Decimal("1.5000"),
                valid_from=(timezone.now() - timedelta(hours=1)).replace(microsecond=0),
                reason=PriceReason.MARKET,
            )
        ]
    )
    return row


def test_a_bid_at_or_above_the_spot_price_is_kept(launch, spot):
    instance = launch(preemptible=True, max_price_per_hour="1.75")
    assert instance.max_price_per_hour == Decimal("1.75")
    entry = AuditEntry.objects.get(action="instance.launched")
    assert entry.detail["max_price_per_hour"] == "1.75"
    assert launch("b", preemptible=True, max_price_per_hour="1.5").max_price_per_hour == Decimal(
        "1.5"
    )


def test_no_bid_means_the_on_demand_price(launch, spot):
    instance = launch(preemptible=True)
    assert instance.max_price_per_hour is None


def test_a_bid_below_the_spot_price_is_refused_with_the_price(launch, spot):
    with pytest.raises(ApplicationError) as refused:
        launch(preemptible=True, max_price_per_hour="1.20")
    assert refused.value.field == "max_price_per_hour"
    assert refused.value.code == "bid_below_price"
    assert "is now $1.50/hour, above your max price of $1.20/hour" in refused.value.message
    assert not Instance.objects.exists()


def test_without_a_market_the_catalog_preemptible_price_is_the_floor_of_a_bid(launch):
    with pytest.raises(ApplicationError) as refused:
        launch(preemptible=True, max_price_per_hour="1.00")
    assert "is now $1.29/hour" in refused.value.message


@pytest.mark.parametrize(
    ("bid", "currency", "message"),
    [
        ("abc", None, "must be an amount per hour"),
        ("-1", None, "must be more than 0"),
        ("0", None, "must be more than 0"),
        ("1.23456", None, "at most 4 decimals"),
        ("NaN", None, "must be an amount per hour"),
        ("1e9", None, "too large"),
        ("2.00", "EUR", "EUR is not accepted"),
    ],
)
def test_bad_bids_are_refused_and_change_nothing(launch, spot, bid, currency, message):
    with pytest.raises(ApplicationError) as refused:
        launch(preemptible=True, max_price_per_hour=bid, currency=currency)
    assert message in refused.value.message
    assert not Instance.objects.exists()


def test_a_bid_on_an_on_demand_launch_is_refused(launch, spot):
    with pytest.raises(ApplicationError) as refused:
        launch(preemptible=False, max_price_per_hour="3")
    assert refused.value.code == "not_preemptible"
    assert not Instance.objects.exists()


def test_the_bid_of_a_running_instance_can_be_raised_not_below_the_price(team, make_instance, spot):
    instance = make_instance("running", preemptible=True, max_price_per_hour=Decimal("1.6"))
    with pytest.raises(ApplicationError) as refused:
        services.instance_bid_change(
            membership=team.member, instance=instance, max_price_per_hour="1.4"
        )
    assert "is now $1.50/hour, above your max price of $1.40/hour" in refused.value.message
    changed = services.instance_bid_change(
        membership=team.member, instance=instance, max_price_per_hour="2.5"
    )
    assert changed.max_price_per_hour == Decimal("2.5")
    assert AuditEntry.objects.filter(action="instance.bid_changed").count() == 1
    assert instance.events.filter(message="Max price set to $2.50/hour.").exists()
    with pytest.raises(ApplicationError):
        services.instance_bid_change(
            membership=team.viewer, instance=instance, max_price_per_hour="3"
        )


def test_the_launch_page_takes_a_bid_and_shows_the_spot_price(
    team, client_for, catalog, ssh_key, quota, spot
):
    from django.urls import reverse

    client = client_for(team.member.user)
    url = reverse("instances:launch", args=[team.organization.slug])
    page = client.get(url, {"instance_type": "gpu_1x_h100", "region": "us-east-1"})
    html = page.content.decode()
    assert '<dd data-testid="spot-now">$1.50/hour</dd>' in html
    assert 'data-testid="price-chart"' in html
    refused = client.post(
        url,
        {
            "instance_type": "gpu_1x_h100",
            "region": "us-east-1",
            "image": catalog.ubuntu.code,
            "ssh_keys": [ssh_key.pk],
            "name": "spot-1",
            "preemptible": "on",
            "max_price_per_hour": "1.1",
        },
    )
    assert refused.status_code == 400
    assert "is now $1.50/hour" in refused.content.decode()
    assert not Instance.objects.exists()
