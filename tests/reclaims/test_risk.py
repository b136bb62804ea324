"""The early warning: "reclaim risk elevated" from the forecast, on the page and by webhook,
never by e-mail."""

from datetime import timedelta

import time_machine
from django.core import mail
from django.utils import timezone

from portal.audit.models import AuditEntry
from portal.instances.models import Instance, State
from portal.provisioning import Capacity
from portal.reclaims.models import ReclaimOrder
from portal.webhooks.models import WebhookDelivery
from portal.webhooks.services import webhook_endpoint_create
from tests.reclaims.conftest import store_snapshot


def report(*, internal, customer=3, forecast=None, fleet=8):
    store_snapshot(
        [
            Capacity(
                "us-east-1",
                "gpu_1x_h100",
                "H100 80GB",
                fleet - internal - customer,
                fleet,
                fleet - internal - customer,
                internal_gpus=internal,
                customer_gpus=customer,
                shortfall_gpus=0,
                internal_forecast_gpus=forecast,
            )
        ]
    )


def test_the_instances_first_in_line_are_warned_when_the_forecast_exceeds_the_free_gpus(
    catalog, spot, endpoint
):
    cheap, middle, rich = spot(bid="0.3"), spot(bid="0.6"), spot(bid="0.9")
    report(internal=4, forecast=6)  # 5 GPUs not held by customers; 6 wanted in 15 minutes

    for instance in (cheap, middle, rich):
        instance.refresh_from_db()
    assert cheap.reclaim_risk_at is not None
    assert middle.reclaim_risk_at is None and rich.reclaim_risk_at is None
    assert "Reclaim risk elevated" in cheap.events.last().message
    (delivery,) = WebhookDelivery.objects.filter(event_type="instance.reclaim_risk")
    assert f'"instance":{{"id":{cheap.pk},' in delivery.body
    assert not mail.outbox
    assert not ReclaimOrder.objects.exists()  # a warning, not a notice

    report(internal=4, forecast=6)  # the same risk: no second warning
    assert WebhookDelivery.objects.filter(event_type="instance.reclaim_risk").count() == 1

    report(internal=2, forecast=2)  # out of risk, but within the warning's 15 minutes
    cheap.refresh_from_db()
    assert cheap.reclaim_risk_at is not None
    with time_machine.travel(timezone.now() + timedelta(minutes=15), tick=False):
        report(internal=2, forecast=2)  # the risk passed
    cheap.refresh_from_db()
    assert cheap.reclaim_risk_at is None


def test_a_warning_outlasts_a_swing_of_the_forecast_within_its_horizon(catalog, spot, endpoint):
    warned = spot(bid="0.3")
    report(internal=4, forecast=6)
    with time_machine.travel(timezone.now() + timedelta(seconds=30), tick=False):
        report(internal=2, forecast=2)  # the next report is out of risk...
    with time_machine.travel(timezone.now() + timedelta(seconds=60), tick=False):
        report(internal=4, forecast=6)  # ...and the one after in again
    warned.refresh_from_db()
    assert warned.reclaim_risk_at is not None
    # Warned once: not cleared and warned again at every swing.
    assert WebhookDelivery.objects.filter(event_type="instance.reclaim_risk").count() == 1


def test_a_rising_trend_warns_without_a_forecast_from_the_backend(catalog, spot):
    first = spot(bid="0.3")
    report(internal=1, forecast=None)
    first.refresh_from_db()
    assert first.reclaim_risk_at is None
    report(internal=4, forecast=None)  # rising fast: the trend runs into the customers' GPUs
    first.refresh_from_db()
    assert first.reclaim_risk_at is not None


def test_a_warning_stands_while_its_place_is_at_risk_when_a_cheaper_instance_arrives(
    catalog, spot, endpoint
):
    warned = spot(bid="0.3")
    report(internal=4, forecast=6)  # one GPU at risk: the cheapest instance is warned
    cheaper = spot(bid="0.1", launched_minutes_ago=1)  # the policy would now take it first
    report(internal=4, forecast=6)
    warned.refresh_from_db()
    cheaper.refresh_from_db()
    assert warned.reclaim_risk_at is not None  # still warned: its GPU covers the risk
    assert cheaper.reclaim_risk_at is None
    assert WebhookDelivery.objects.filter(event_type="instance.reclaim_risk").count() == 1

    report(internal=4, forecast=7)  # one more GPU at risk: the next in line is warned too
    cheaper.refresh_from_db()
    assert cheaper.reclaim_risk_at is not None
    assert WebhookDelivery.objects.filter(event_type="instance.reclaim_risk").count() == 2


def test_a_warning_the_policy_can_no_longer_act_on_moves_to_the_next_in_line(
    catalog, spot, endpoint
):
    first, second = spot(bid="0.3"), spot(bid="0.6")
    report(internal=4, forecast=6)  # one GPU at risk: the cheaper instance is warned
    first.refresh_from_db()
    assert first.reclaim_risk_at is not None

    # Its customer stops it: a stopped machine holds no GPUs and is no candidate any more.
    Instance.objects.filter(pk=first.pk).update(state=State.STOPPED)
    report(internal=4, forecast=6)  # the same risk, no longer covered by that warning
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.reclaim_risk_at is None
    assert second.reclaim_risk_at is not None
    assert WebhookDelivery.objects.filter(event_type="instance.reclaim_risk").count() == 2


def test_each_warning_is_audited_with_its_instance_and_the_forecast(catalog, spot):
    cheap, middle, rich = spot(bid="0.3"), spot(bid="0.6"), spot(bid="0.9")
    report(internal=4, forecast=7)  # 5 GPUs not held by customers; 7 wanted: two at risk

    entries = list(AuditEntry.objects.filter(action="reclaim.risk_warned"))
    assert {e.target_id for e in entries} == {str(cheap.pk), str(middle.pk)}
    for entry in entries:
        assert entry.organization_id == cheap.organization_id
        assert entry.actor_kind == "system" and entry.actor_label == "reclaims"
        assert entry.detail == {"forecast_internal_gpus": 7, "fleet": 8, "customer_gpus": 3}
    rich.refresh_from_db()
    assert rich.reclaim_risk_at is None


def test_warnings_of_one_report_reach_each_organizations_own_endpoint(
    catalog, spot, endpoint, team, outsider
):
    """Several instances warned by one report, of two organizations: each instance has its
    event and its one webhook, delivered to its own organization's endpoint only."""
    ours_endpoint, _secret = endpoint
    theirs, _secret = webhook_endpoint_create(
        membership=outsider,
        url="https://hooks.rival.example/backfill",
        event_types=["instance.reclaim_risk"],
    )
    ours = spot(bid="0.3")
    rival = spot(bid="0.4", organization=outsider.organization, created_by=outsider.user)
    later = spot(bid="0.9")
    report(internal=4, forecast=7)  # 5 GPUs not held by customers; 7 wanted: two to warn

    for instance in (ours, rival, later):
        instance.refresh_from_db()
    assert ours.reclaim_risk_at is not None and rival.reclaim_risk_at is not None
    assert later.reclaim_risk_at is None
    for instance in (ours, rival):
        assert "Reclaim risk elevated" in instance.events.last().message
    deliveries = WebhookDelivery.objects.filter(event_type="instance.reclaim_risk")
    (to_us,) = deliveries.filter(endpoint=ours_endpoint)
    (to_them,) = deliveries.filter(endpoint=theirs)
    assert f'"instance":{{"id":{ours.pk},' in to_us.body
    assert f'"instance":{{"id":{rival.pk},' in to_them.body
    assert '"organization":"rival"' in to_them.body
