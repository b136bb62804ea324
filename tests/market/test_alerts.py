"""Capacity alerts: checked on each capacity snapshot; one e-mail (with a launch link) and one
capacity.available webhook when they come true; then they rest until false again."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.capacity.snapshot import snapshot_store
from portal.lib.errors import ApplicationError
from portal.market import services
from portal.market.models import CapacityAlert, PriceReason, SpotPrice
from portal.provisioning import Capacity
from portal.webhooks.models import WebhookDelivery
from portal.webhooks.services import webhook_endpoint_create


def free(instances: int) -> None:
    snapshot_store(
        capacities=[
            Capacity(
                region="us-east-1",
                instance_type="gpu_1x_h100",
                gpu_model="h100",
                free_gpus=instances,
                total_gpus=64,
                free_instances=instances,
            )
        ],
        marker=0,
    )


@pytest.fixture
def alert(team, catalog):
    return services.capacity_alert_create(
        membership=team.member, region="us-east-1", instance_type="gpu_1x_h100", count=2
    )


def test_an_alert_fires_once_then_rests_until_false_again(
    team, alert, django_capture_on_commit_callbacks
):
    webhook_endpoint_create(
        membership=team.admin,
        url="https://hooks.example.com/backfill",
        event_types=["capacity.available"],
    )
    free(1)
    assert services.capacity_alerts_check() == 0
    assert mail.outbox == []

    free(3)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.capacity_alerts_check() == 1
    (message,) = mail.outbox
    assert message.to == [team.member.user.email]
    assert "2 x 1x H100 80GB" in message.body and "us-east-1" in message.body
    launch = reverse("instances:launch", args=[team.organization.slug])
    assert f"{launch}?region=us-east-1&instance_type=gpu_1x_h100" in message.body
    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.event_type == "capacity.available"

    with django_capture_on_commit_callbacks(execute=True):
        assert services.capacity_alerts_check() == 0  # resting
    assert len(mail.outbox) == 1

    free(0)
    services.capacity_alerts_check()
    alert.refresh_from_db()
    assert alert.fired_at is None
    free(2)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.capacity_alerts_check() == 1
    assert len(mail.outbox) == 2


def test_an_alert_with_a_max_price_waits_for_the_price(team, catalog):
    services.capacity_alert_create(
        membership=team.member,
        region="us-east-1",
        instance_type="gpu_1x_h100",
        max_price="1.40",
    )
    services.spot_price_history_add(
        rows=[
            SpotPrice(
                region=catalog.us_east,
                instance_type=catalog.h100_1x,
                price=Decimal("1.5"),
                valid_from=timezone.now().replace(microsecond=0),
                reason=PriceReason.MARKET,
            )
        ]
    )
    free(5)
    assert services.capacity_alerts_check() == 0
    SpotPrice.objects.update(price=Decimal("1.35"))
    assert services.capacity_alerts_check() == 1


def test_expired_alerts_go(team, alert):
    CapacityAlert.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    free(5)
    assert services.capacity_alerts_check() == 0
    assert not CapacityAlert.objects.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"region": "mars-1"}, "There is no region “mars-1”."),
        ({"instance_type": "gpu_99x"}, "There is no instance type “gpu_99x”."),
        ({"instance_type": "gpu_1x_l40s"}, "is not offered in US East"),
        ({"count": 0}, "from 1 to 100"),
        ({"count": "lots"}, "from 1 to 100"),
        ({"max_price": "-2"}, "must be more than 0"),
        ({"max_price": "0.00001"}, "at most 4 decimals"),
    ],
)
def test_bad_alerts_are_refused(team, catalog, fields, message):
    values = {"region": "us-east-1", "instance_type": "gpu_1x_h100", "count": 1, **fields}
    with pytest.raises(ApplicationError) as refused:
        services.capacity_alert_create(membership=team.member, **values)
    assert message in refused.value.message
    assert not CapacityAlert.objects.exists()


def test_at_most_20_alerts_per_organization(team, catalog):
    for _ in range(20):
        services.capacity_alert_create(
            membership=team.member, region="us-east-1", instance_type="gpu_1x_h100"
        )
    with pytest.raises(ApplicationError) as refused:
        services.capacity_alert_create(
            membership=team.member, region="us-east-1", instance_type="gpu_1x_h100"
        )
    assert "at most 20" in refused.value.message
    assert CapacityAlert.objects.count() == 20


def test_the_alerts_page_lists_adds_and_removes(team, catalog, client_for, outsider):
    client = client_for(team.member.user)
    url = reverse("market:alerts", args=[team.organization.slug])
    page = client.get(url, {"instance_type": "gpu_1x_h100", "region": "us-east-1"})
    assert page.status_code == 200
    added = client.post(url, {"instance_type": "gpu_1x_h100", "region": "us-east-1", "count": "1"})
    assert added.status_code == 302
    alert = CapacityAlert.objects.get()
    assert "1 x 1x H100 80GB" in client.get(url).content.decode()
    bad = client.post(url, {"instance_type": "gpu_1x_h100", "region": "nowhere", "count": "1"})
    assert bad.status_code == 400 and "There is no region" in bad.content.decode()
    remove = reverse("market:alert_remove", args=[team.organization.slug, alert.pk])
    assert client.get(remove).status_code == 405
    other, viewer = Client(), Client()
    other.force_login(outsider.user)
    viewer.force_login(team.viewer.user)
    assert other.get(url).status_code == 404
    assert other.post(remove).status_code == 404
    assert viewer.post(remove).status_code == 403
    assert client.post(remove).status_code == 302
    assert not CapacityAlert.objects.exists()


def test_the_public_pricing_page_needs_no_login(client, catalog):
    now = timezone.now().replace(microsecond=0)
    services.spot_price_history_add(
        rows=[
            SpotPrice(
                region=catalog.us_east,
                instance_type=catalog.h100_1x,
                price=Decimal("1.1"),
                valid_from=now - timedelta(days=2),
                valid_until=now - timedelta(days=1),
                reason=PriceReason.INITIAL,
            ),
            SpotPrice(
                region=catalog.us_east,
                instance_type=catalog.h100_1x,
                price=Decimal("1.7"),
                valid_from=now - timedelta(days=1),
                reason=PriceReason.MARKET,
            ),
        ]
    )
    page = client.get(reverse("market:pricing"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="offer-gpu_1x_h100-us-east-1"' in html
    assert "<svg" in html and 'class="price-line"' in html
    assert "1.70" in html and "2.49" in html  # spot now, on-demand
    assert "$1.10–$1.70/hour" in html  # the week's range of the priced offer
    assert "$1.29/hour throughout" in html  # an offer the market does not price: one price
