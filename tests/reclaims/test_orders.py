"""Reclaim orders without a backend: the policy's choice, the notice, the order's words, bad
input. (The backend's side is in test_with_simulator.py.)"""

import logging
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from portal.audit.models import AuditEntry
from portal.instances.models import State
from portal.lib.errors import ApplicationError
from portal.provisioning import Capacity
from portal.reclaims import services
from portal.reclaims.models import OrderState, ReclaimOrder, ReclaimVictim, Source
from portal.webhooks.models import WebhookDelivery
from tests.reclaims.conftest import store_snapshot


def order(catalog, gpus, *, minutes=10, **kwargs):
    return services.reclaim_order_create(
        region=catalog.us_east,
        gpu_model=catalog.h100,
        gpus=gpus,
        deadline=timezone.now() + timedelta(minutes=minutes),
        **kwargs,
    )


def test_the_policy_takes_the_lowest_bid_first_then_the_newest_and_never_on_demand(
    catalog, spot, make_instance, django_capture_on_commit_callbacks
):
    on_demand = make_instance(State.RUNNING, launched_at=timezone.now())
    cheap_old = spot(bid="0.90", launched_minutes_ago=60)
    cheap_new = spot(bid="0.90", launched_minutes_ago=5)
    catalog_priced = spot(launched_minutes_ago=1)  # no bid: the catalog's 1.29
    rich = spot(bid="2.00", launched_minutes_ago=1)
    stopped = spot(bid="0.10", state=State.STOPPED)  # holds no GPUs
    other_model = spot(bid="0.10", instance_type=catalog.l40s_1x, region=catalog.eu_west)

    with django_capture_on_commit_callbacks(execute=True):
        made = order(catalog, 3)

    victims = list(made.victims.order_by("rank"))
    assert [v.instance for v in victims] == [cheap_new, cheap_old, catalog_priced]
    assert [str(v.price_per_hour) for v in victims] == ["0.9000", "0.9000", "1.2900"]
    assert made.returnable_gpus == 3
    assert made.state == OrderState.OPEN
    for instance in (on_demand, rich, stopped, other_model):
        instance.refresh_from_db()
        assert instance.reclaim_at is None


def test_every_victim_gets_its_notice_on_the_page_by_email_and_webhook_and_it_is_audited(
    catalog, spot, endpoint, staff, django_capture_on_commit_callbacks
):
    first, second = spot(bid="0.50"), spot(bid="0.60")
    with django_capture_on_commit_callbacks(execute=True):
        made = order(catalog, 2, minutes=30, by=staff, reason="Training run of the ops team.")

    for instance in (first, second):
        instance.refresh_from_db()
        assert instance.reclaim_at == made.end_at == made.deadline.replace(microsecond=0)
        event = instance.events.last()
        assert "will reclaim this instance at" in event.message
        assert "Training run of the ops team." in event.message
    assert len(mail.outbox) == 2
    assert all("interrupted at" in m.subject for m in mail.outbox)
    deliveries = WebhookDelivery.objects.filter(event_type="instance.interruption_notice")
    assert deliveries.count() == 2
    actions = list(
        AuditEntry.objects.filter(action__startswith="reclaim.").values_list("action", flat=True)
    )
    assert actions.count("reclaim.order_created") == 1
    assert actions.count("reclaim.victim_noticed") == 2


def test_a_deadline_too_close_for_full_notice_is_said_with_the_earliest_time(
    catalog, spot, settings
):
    settings.RECLAIM_MIN_NOTICE_SECONDS = 120
    victim = spot()
    made = order(catalog, 1, minutes=1)  # 60 s away, 120 s of notice

    assert made.feasible is False
    assert made.end_at == made.earliest_at
    # Full notice, rounded up to a whole second.
    assert timedelta(seconds=120) <= made.earliest_at - made.created_at < timedelta(seconds=121)
    assert "cannot be met with full notice; the earliest time is" in made.summary
    assert f"{made.earliest_at:%H:%M:%S} UTC" in made.summary
    victim.refresh_from_db()
    assert victim.reclaim_at == made.earliest_at  # full notice, never less


def test_an_order_for_more_than_the_preemptible_fleet_says_how_much_it_can_return(
    catalog, spot, make_instance
):
    spot(), spot()
    make_instance(State.RUNNING)  # on-demand: never counted
    made = order(catalog, 16)
    assert made.returnable_gpus == 2
    assert made.short_gpus == 14
    assert "it can return only 2 GPUs (14 short)" in made.summary


def test_whole_machines_only_an_eight_gpu_machine_covers_a_four_gpu_order(catalog, spot):
    big = spot(instance_type=catalog.h100_8x, gpus=8)
    made = order(catalog, 4)
    assert [v.instance for v in made.victims.all()] == [big]
    assert made.returnable_gpus == 8


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"gpus": 0}, "Ask for at least 1 GPU."),
        ({"gpus": -4}, "Ask for at least 1 GPU."),
        ({"region": "mars-1"}, "Unknown region 'mars-1'."),
        ({"gpu_model": "b300"}, "Unknown GPU model 'b300'."),
        ({"deadline": "past"}, "is in the past"),
        ({"notice_seconds": 30}, "must be at least 120 seconds"),
    ],
)
def test_bad_orders_are_refused_and_change_nothing(catalog, spot, changes, message):
    victim = spot()
    arguments = {
        "region": catalog.us_east,
        "gpu_model": catalog.h100,
        "gpus": 1,
        "deadline": timezone.now() + timedelta(minutes=10),
    }
    arguments.update(changes)
    if arguments["deadline"] == "past":
        arguments["deadline"] = timezone.now() - timedelta(minutes=1)
    with pytest.raises(ApplicationError, match=message):
        services.reclaim_order_create(**arguments)
    assert not ReclaimOrder.objects.exists()
    victim.refresh_from_db()
    assert victim.reclaim_at is None
    assert not mail.outbox


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"preemptible_only": False}, "never reclaims on-demand machines"),
        ({"spare_reserved": False}, "Capacity held by a reservation is never reclaimed"),
        ({"notice_seconds": 10}, "must be at least 120 seconds"),
    ],
)
def test_a_policy_that_would_reclaim_what_is_never_reclaimed_is_refused(
    db, staff, changes, message
):
    with pytest.raises(ApplicationError, match=message):
        services.policy_update(by=staff, **{"notice_seconds": 120, "order": "newest", **changes})
    assert services.policy_get().order == "price_then_newest"


def capacities(shortfall, *, fleet=64, internal=60, customer=4):
    return [
        Capacity(
            "us-east-1",
            "gpu_1x_h100",
            "H100 80GB",
            0,
            fleet,
            0,
            internal_gpus=internal,
            customer_gpus=customer,
            shortfall_gpus=shortfall,
        )
    ]


def test_two_reports_of_the_same_shortfall_make_one_order(catalog, spot, short_notice):
    victims = [spot(bid="0.5") for _ in range(3)]
    store_snapshot(capacities(2))
    store_snapshot(capacities(2))

    (made,) = ReclaimOrder.objects.all()
    assert made.source == Source.BACKEND
    assert made.gpus == 2
    assert made.reported_shortfall == 2
    assert timedelta(seconds=2) <= made.deadline - made.created_at < timedelta(seconds=3)
    assert made.victims.count() == 2
    # The shortfall grows by one: one more order, for the one GPU not yet covered.
    store_snapshot(capacities(3))
    assert ReclaimOrder.objects.count() == 2
    assert ReclaimVictim.objects.count() == 3
    assert {v.instance for v in ReclaimVictim.objects.all()} == set(victims)


def test_a_shortfall_larger_than_the_fleet_is_logged_and_capped(catalog, spot, caplog):
    spot()
    with caplog.at_level(logging.WARNING):
        store_snapshot(capacities(500, fleet=64))
    (made,) = ReclaimOrder.objects.all()
    assert made.gpus == 64
    assert made.returnable_gpus == 1
    assert "more than the fleet of 64: capped" in caplog.text
    assert AuditEntry.objects.filter(action="reclaim.shortfall_capped").exists()


def test_a_shortfall_with_nothing_preemptible_says_so_once(catalog, make_instance):
    make_instance(State.RUNNING)
    store_snapshot(capacities(1))
    store_snapshot(capacities(1))
    (made,) = ReclaimOrder.objects.all()
    assert made.state == OrderState.NOTHING
    assert "Nothing to reclaim" in made.summary


def test_a_shortfall_with_nothing_preemptible_is_said_again_only_when_it_grows(
    catalog, make_instance
):
    """The operator's work eases off (13, 12, ... GPUs short, nothing to take): one order said
    it. It grows past what was said: said again. It ends and comes back: a new shortfall."""
    make_instance(State.RUNNING)
    for shortfall in (13, 12, 11, 12, 13):
        store_snapshot(capacities(shortfall))
    assert list(ReclaimOrder.objects.values_list("reported_shortfall", flat=True)) == [13]
    store_snapshot(capacities(14))
    store_snapshot(capacities(0))
    store_snapshot(capacities(3))
    orders = ReclaimOrder.objects.order_by("id")
    assert list(orders.values_list("reported_shortfall", flat=True)) == [13, 14, 3]
    assert {order.state for order in orders} == {OrderState.NOTHING}


def test_the_spot_market_gives_chosen_instances_notice_with_its_reason(
    catalog, spot, make_instance, settings
):
    settings.RECLAIM_MIN_NOTICE_SECONDS = 120
    outbid = spot(bid="0.40")
    on_demand = make_instance(State.RUNNING)
    at = timezone.now() + timedelta(seconds=10)  # less than the minimum: moved to 120 s

    (made,) = services.reclaim_instances(
        instances=[outbid, on_demand], reason="The spot price rose above your bid.", at=at
    )
    assert made.source == Source.PRICE
    outbid.refresh_from_db()
    on_demand.refresh_from_db()
    assert outbid.reclaim_at - made.created_at >= timedelta(seconds=120)
    assert "The spot price rose above your bid." in outbid.events.last().message
    assert on_demand.reclaim_at is None
    # Already under notice: not again.
    assert services.reclaim_instances(instances=[outbid], reason="again", at=at) == []


def test_a_spot_price_above_a_bid_reclaims_the_instance_with_full_notice(
    catalog, spot, settings, django_capture_on_commit_callbacks
):
    from decimal import Decimal

    from portal.market.signals import spot_price_changed

    settings.RECLAIM_MIN_NOTICE_SECONDS = 120
    low, high, no_bid = spot(bid="0.50"), spot(bid="2.00"), spot()
    spot_price_changed.send(
        sender=None,
        region_id=catalog.us_east.pk,
        instance_type_id=catalog.h100_1x.pk,
        price=Decimal("0.80"),
        previous=Decimal("0.40"),
        at=timezone.now(),
    )
    (made,) = ReclaimOrder.objects.all()
    assert made.source == Source.PRICE
    assert [v.instance for v in made.victims.all()] == [low]
    low.refresh_from_db()
    assert low.reclaim_at - made.created_at >= timedelta(seconds=120)
    assert "Price above your max price" in low.events.last().message
    for other in (high, no_bid):
        other.refresh_from_db()
        assert other.reclaim_at is None


def _ended(instance, state, at):
    type(instance).objects.filter(pk=instance.pk).update(state=state, terminated_at=at)
    instance.refresh_from_db()
    services.victim_ended(instance)


def test_a_victim_its_customer_terminates_during_the_notice_does_not_make_the_order_missed(
    catalog, spot, django_capture_on_commit_callbacks
):
    leaves, stays = spot(bid="0.50"), spot(bid="0.60")
    with django_capture_on_commit_callbacks(execute=True):
        made = order(catalog, 2, minutes=30)
    # The customer is done 20 s into the notice and terminates it; the other runs it out.
    _ended(leaves, State.TERMINATED, made.created_at + timedelta(seconds=20))
    _ended(stays, State.INTERRUPTED, made.end_at)

    made.refresh_from_db()
    assert made.state == OrderState.DONE
    assert made.met is True


def test_a_victim_interrupted_before_its_full_notice_makes_the_order_missed(
    catalog, spot, django_capture_on_commit_callbacks
):
    cut, stays = spot(bid="0.50"), spot(bid="0.60")
    with django_capture_on_commit_callbacks(execute=True):
        made = order(catalog, 2, minutes=30)
    _ended(cut, State.INTERRUPTED, made.created_at + timedelta(seconds=20))
    _ended(stays, State.INTERRUPTED, made.end_at)

    made.refresh_from_db()
    assert made.state == OrderState.DONE
    assert made.met is False


def test_the_sweep_settles_a_victim_whose_end_went_unheard_and_closes_its_order(
    catalog, spot, django_capture_on_commit_callbacks, django_assert_num_queries
):
    first, second = spot(bid="0.50"), spot(bid="0.60")
    with django_capture_on_commit_callbacks(execute=True):
        made = order(catalog, 2, minutes=30)
    with django_assert_num_queries(1):  # nothing unheard: one look
        assert services.orders_sweep() == 0
    _ended(first, State.TERMINATED, made.created_at + timedelta(seconds=20))
    # The second ends without the portal's signal (a row written behind its back).
    type(second).objects.filter(pk=second.pk).update(
        state=State.TERMINATED, terminated_at=made.end_at
    )

    assert services.orders_sweep() == 1
    made.refresh_from_db()
    assert made.state == OrderState.DONE
    victim = ReclaimVictim.objects.get(instance_id=second.pk)
    assert victim.ended_state == State.TERMINATED
    assert services.orders_sweep() == 0
