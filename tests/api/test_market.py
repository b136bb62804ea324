"""The spot market in the API: prices now and their history, bids, capacity alerts."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.instances.models import Instance
from portal.market.models import CapacityAlert, PriceReason, SpotPrice
from portal.market.services import spot_price_history_add
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(catalog):
    now = timezone.now().replace(microsecond=0)
    rows = []
    for n, price in enumerate(["1.10", "1.60", "1.45"]):
        rows.append(
            SpotPrice(
                region=catalog.us_east,
                instance_type=catalog.h100_1x,
                price=Decimal(price),
                valid_from=now - timedelta(hours=3 - n),
                valid_until=now - timedelta(hours=2 - n) if n < 2 else None,
                reason=PriceReason.MARKET,
            )
        )
    return spot_price_history_add(rows=rows)


@pytest.fixture
def body(catalog, ssh_key):
    return {
        "name": "spot-1",
        "instance_type": catalog.h100_1x.code,
        "region": catalog.us_east.code,
        "image": catalog.ubuntu.code,
        "ssh_key_ids": [ssh_key.pk],
        "preemptible": True,
    }


def test_prices_now(api, history):
    response = api.get("/prices/", {"region": "us-east-1", "instance_type": "gpu_1x_h100"})
    assert response.status_code == 200
    (offer,) = response.json()
    assert offer["spot_hourly"] == "1.4500"
    assert offer["on_demand_hourly"] == "2.4900"
    assert offer["spot_low_24h"] == "1.1000" and offer["spot_high_24h"] == "1.6000"
    assert offer["market_priced"] is True
    others = api.get("/prices/", {"region": "eu-west-1"}).json()
    assert {o["instance_type"] for o in others} == {"gpu_1x_h100", "gpu_1x_l40s"}
    assert all(o["market_priced"] is False for o in others)


def test_price_history_filters_and_pages(api, history):
    response = api.get("/prices/history/", {"region": "us-east-1"})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["price"] for r in results] == ["1.1000", "1.6000", "1.4500"]
    assert results[-1]["valid_until"] is None
    since = (timezone.now() - timedelta(minutes=90)).isoformat()
    recent = api.get("/prices/history/", {"since": since}).json()["results"]
    assert [r["price"] for r in recent] == ["1.6000", "1.4500"]
    assert api.get("/prices/history/", {"region": "eu-west-1"}).json()["results"] == []
    bad = api.get("/prices/history/", {"since": "yesterday"})
    assert_error(bad, 400)
    backwards = api.get(
        "/prices/history/",
        {
            "since": timezone.now().isoformat(),
            "until": (timezone.now() - timedelta(days=1)).isoformat(),
        },
    )
    assert_error(backwards, 400)


def test_a_launch_bid_below_the_price_names_the_price(api, body, quota, history):
    response = api.post("/instances/", {**body, "max_price_per_hour": "1.00"})
    error = assert_error(response, 400, "bid_below_price")
    assert "is now $1.45/hour" in error["message"]
    assert not Instance.objects.exists()
    response = api.post("/instances/", {**body, "max_price_per_hour": "2.0", "currency": "USD"})
    assert response.status_code == 201, response.content
    assert response.json()["max_price_per_hour"] == "2.0000"
    pk = response.json()["id"]
    raised = api.post(f"/instances/{pk}/max-price/", {"max_price_per_hour": "3.25"})
    assert raised.status_code == 200 and raised.json()["max_price_per_hour"] == "3.2500"
    low = api.post(f"/instances/{pk}/max-price/", {"max_price_per_hour": "1.2"})
    assert_error(low, 400, "bid_below_price")


def test_capacity_alerts(api, catalog, api_as, outsider):
    made = api.post(
        "/capacity-alerts/",
        {"instance_type": "gpu_1x_h100", "region": "us-east-1", "count": 2, "max_price": "1.5"},
    )
    assert made.status_code == 201, made.content
    alert = made.json()
    assert alert["count"] == 2 and alert["max_price"] == "1.5000"
    assert api.get("/capacity-alerts/").json()["results"][0]["id"] == alert["id"]
    unknown = api.post("/capacity-alerts/", {"instance_type": "gpu_1x_h100", "region": "mars"})
    assert_error(unknown, 400)
    other = api_as(outsider)
    assert_error(other.get(f"/capacity-alerts/{alert['id']}/"), 404)
    assert_error(other.delete(f"/capacity-alerts/{alert['id']}/"), 404)
    assert api.delete(f"/capacity-alerts/{alert['id']}/").status_code == 204
    assert not CapacityAlert.objects.exists()
