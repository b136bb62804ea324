"""The price reclaim against the real simulator: a spot price above a bid gives the instance
its notice; raising the max price during the notice cancels it; not raising it ends the
instance at the end of the window, and billing stops at that second."""

import time
from datetime import datetime
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from portal.billing.models import UsageInterval
from portal.instances import services as instance_services
from portal.instances import tasks
from portal.instances.models import State
from portal.market import services as market
from portal.market.models import SpotMarket
from portal.provisioning import get_backend
from portal.reclaims import sync as reclaim_sync
from portal.reclaims.models import OrderState, ReclaimOrder, ReclaimVictim, Source

pytestmark = pytest.mark.slow


@pytest.fixture
def running(launch, eager, django_capture_on_commit_callbacks):
    def make(name, **overrides):
        instance = launch(name, **overrides)
        with django_capture_on_commit_callbacks(execute=True):
            tasks.instance_provision.apply(args=[instance.pk])
        instance.refresh_from_db()
        assert instance.state == State.RUNNING
        return instance

    return make


@pytest.fixture
def spot_market(catalog):
    return SpotMarket.objects.create(
        region=catalog.us_east,
        instance_type=catalog.h100_1x,
        floor=Decimal("0.50"),
        ceiling=Decimal("2.40"),
        target_share=Decimal("50"),
        max_step=Decimal("0.50"),
    )


def set_price(spot_market, price, staff, capture):
    with capture(execute=True):
        market.spot_price_set(market=spot_market, price=price, user=staff)


def test_a_bid_below_a_rising_price_gets_notice_and_raising_it_cancels(
    simulator,
    running,
    short_notice,
    spot_market,
    staff,
    team,
    django_capture_on_commit_callbacks,
):
    set_price(spot_market, "1.40", staff, django_capture_on_commit_callbacks)
    keeper = running("keeper", preemptible=True, max_price_per_hour="1.60")
    loser = running("loser", preemptible=True, max_price_per_hour="1.55")
    rich = running("rich", preemptible=True, max_price_per_hour="2.20")
    mail.outbox.clear()

    set_price(spot_market, "1.80", staff, django_capture_on_commit_callbacks)
    (order,) = ReclaimOrder.objects.all()
    assert order.source == Source.PRICE
    assert "Price above your max price" in order.reason
    for instance in (keeper, loser, rich):
        instance.refresh_from_db()
    assert keeper.reclaim_at == loser.reclaim_at == order.end_at
    assert rich.reclaim_at is None
    notices = [m for m in mail.outbox if "interrupted at" in m.subject]
    assert len(notices) == 2
    # The machines' processes read the time from their metadata during the notice, as for a
    # capacity reclaim; the backend is not told to end them until the notice is over (that
    # could not be undone).
    for instance in (keeper, loser):
        notice = simulator.control.interruption(instance.backend_id)
        assert notice is not None and notice["action"] == "terminate"
        assert datetime.fromisoformat(notice["time"]) == order.end_at
        assert get_backend().get(instance.backend_id).reclaim_at is None
    assert simulator.control.interruption(rich.backend_id) is None

    with django_capture_on_commit_callbacks(execute=True):
        instance_services.instance_bid_change(
            membership=team.member, instance=keeper, max_price_per_hour="1.90"
        )
    keeper.refresh_from_db()
    assert keeper.reclaim_at is None
    assert keeper.events.filter(message__contains="cancelled").exists()
    assert list(ReclaimVictim.objects.values_list("instance_id", flat=True)) == [loser.pk]
    # Off the keeper's metadata; still on the loser's.
    assert simulator.control.interruption(keeper.backend_id) is None
    assert simulator.control.interruption(loser.backend_id) is not None

    # The window ends: the backend is told, the machine ends at that second.
    time.sleep(max(0.0, (loser.reclaim_at - timezone.now()).total_seconds()) + 0.3)
    with django_capture_on_commit_callbacks(execute=True):
        reclaim_sync.order_tell_backend(order.pk)
    time.sleep(0.3)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.instance_poll.apply(args=[loser.pk])
        tasks.instance_poll.apply(args=[keeper.pk])
    loser.refresh_from_db()
    keeper.refresh_from_db()
    assert loser.state == State.INTERRUPTED
    assert loser.terminated_at == loser.reclaim_at
    assert keeper.state == State.RUNNING
    last = UsageInterval.objects.filter(instance=loser).order_by("start").last()
    # Billing stops at that second (boundaries are whole seconds, floored).
    assert last.end == loser.reclaim_at.replace(microsecond=0)
    order.refresh_from_db()
    assert order.state == OrderState.DONE and order.met is True


def test_a_price_order_whose_notice_is_over_is_told_to_the_backend_once_for_all_its_victims(
    simulator, running, short_notice, spot_market, staff, django_capture_on_commit_callbacks
):
    set_price(spot_market, "1.40", staff, django_capture_on_commit_callbacks)
    running("first", preemptible=True, max_price_per_hour="1.60")
    running("second", preemptible=True, max_price_per_hour="1.55")
    set_price(spot_market, "1.80", staff, django_capture_on_commit_callbacks)
    (order,) = ReclaimOrder.objects.all()
    assert order.victims.count() == 2
    assert reclaim_sync.price_victims_due() == []  # still within the notice

    time.sleep(max(0.0, (order.end_at - timezone.now()).total_seconds()) + 0.3)
    # The sweep finds the order once, not once per victim (one task to tell the backend).
    assert reclaim_sync.price_victims_due() == [order.pk]
