"""Budgets checked when usage is metered, and a hard limit that stops running instances."""

import pytest
from django.core import mail

from portal.audit.models import AuditEntry
from portal.billing import budget_stops, services
from portal.billing.models import Budget, BudgetAlert
from portal.instances.models import Instance, State
from portal.instances.signals import instance_state_changed
from portal.reclaims.services import policy_get
from tests.billing.conftest import at, timeline


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    """The stop's backend call is a task; here only the request to stop matters."""
    monkeypatch.setattr("portal.instances.tasks._enqueue", lambda action, pk: None)


@pytest.fixture
def running(team, make_instance, clock):
    """One 1x H100 running from March 1 at 2.49 an hour: $59.76 a day."""
    instance = make_instance(team.organization, name="steady")
    timeline(instance, ("2026-03-01 00:00:00", "running"))
    return Instance.objects.get(pk=instance.pk)


def metered(instance, capture):
    """What the lifecycle does at every transition: the signal, metering on commit."""
    event = instance.events.order_by("-at").first()
    with capture(execute=True):
        instance_state_changed.send(
            sender=Instance, instance=instance, from_state=event.from_state, event=event
        )


def subjects():
    return [m.subject for m in mail.outbox]


def test_metering_checks_the_budget_at_once(
    team, running, clock, django_capture_on_commit_callbacks
):
    services.budget_set(organization=team.organization, amount="100", hard_limit=False, by=None)
    clock.set("2026-03-03 00:00:00")  # 119.52: 50, 80 and 100 % crossed together

    metered(running, django_capture_on_commit_callbacks)
    metered(running, django_capture_on_commit_callbacks)

    assert subjects() == ["[Backfill] Acme AI has used 100 % of its March 2026 budget"] * 2
    assert sorted(BudgetAlert.objects.values_list("threshold", flat=True)) == [50, 80, 100]


@pytest.fixture
def scheduled(monkeypatch):
    """The end-of-notice task's schedule: (organization id, eta) for each."""
    calls = []
    monkeypatch.setattr(
        "portal.billing.tasks.budget_stops_due.apply_async",
        lambda args, eta: calls.append((*args, eta)),
    )
    return calls


def stop_at_the_limit(team, amount: str = "500"):
    services.budget_set(
        organization=team.organization,
        amount=amount,
        hard_limit=True,
        stop_instances=True,
        by=team.owner.user,
    )


def test_the_hard_limit_gives_the_reclaim_notice_then_stops_running_instances(
    team, outsider, running, make_instance, clock, django_capture_on_commit_callbacks, scheduled
):
    elsewhere = make_instance(outsider.organization, name="theirs")
    timeline(elsewhere, ("2026-03-01 00:00:00", "running"))
    stop_at_the_limit(team)
    clock.set("2026-03-09 09:00:00")  # 201 h: 500.49

    metered(running, django_capture_on_commit_callbacks)

    running.refresh_from_db()
    assert running.state == State.RUNNING and running.stop_pending
    assert running.stop_at == at("2026-03-09 09:02:00")  # the reclaim notice: 120 s
    assert "will stop this instance at 09:02:00 UTC" in running.events.latest("at").message
    assert scheduled == [(team.organization.pk, at("2026-03-09 09:02:00"))]
    noticed = AuditEntry.objects.get(action="budget.instances_stop_noticed")
    assert noticed.detail["instances"] == [running.pk]
    assert noticed.actor_display == "Backfill, budget hard limit"
    told = [m for m in mail.outbox if "reached its budget" in m.subject]
    assert [m.subject for m in told][:1] == [
        "[Backfill] Acme AI reached its budget: 1 running instance stops at 09:02 UTC"
    ]
    assert sorted(m.to[0] for m in told) == sorted([team.owner.user.email, team.billing.user.email])
    body = told[0].body
    assert "these instances will be stopped at 09:02:00 UTC (March 9, 2026)" in body
    assert "- steady (1x H100 80GB in us-east-1)" in body
    assert "Their disks are kept" in body and "raise the budget" in body

    clock.set("2026-03-09 09:01:00")
    assert budget_stops.budget_stops_due(organization_id=team.organization.pk) == []
    clock.set("2026-03-09 09:02:00")
    assert budget_stops.budget_stops_due(organization_id=team.organization.pk) == [running.pk]

    running.refresh_from_db()
    assert running.state == State.STOPPING and running.stop_at is None
    assert Instance.objects.get(pk=elsewhere.pk).state == State.RUNNING
    entry = AuditEntry.objects.get(action="budget.instances_stopped")
    assert entry.detail["instances"] == [running.pk]
    stop = AuditEntry.objects.get(action="instance.action")
    assert stop.actor_display == "Backfill, budget hard limit"
    assert budget_stops.budget_stops_due() == []  # once

    mail.outbox.clear()
    metered(running, django_capture_on_commit_callbacks)  # once a month, not at every meter
    assert not [m for m in mail.outbox if "reached its budget" in m.subject]


def test_raising_the_budget_during_the_notice_calls_the_stop_off(
    team, running, clock, django_capture_on_commit_callbacks, scheduled
):
    stop_at_the_limit(team)
    clock.set("2026-03-09 09:00:00")
    metered(running, django_capture_on_commit_callbacks)
    assert Instance.objects.get(pk=running.pk).stop_pending

    clock.set("2026-03-09 09:01:00")
    stop_at_the_limit(team, amount="800")  # raised

    running.refresh_from_db()
    assert running.stop_at is None and not running.stop_pending
    assert running.events.latest("at").message.startswith("The stop is off")
    clock.set("2026-03-09 09:05:00")
    assert budget_stops.budget_stops_due() == []
    assert Instance.objects.get(pk=running.pk).state == State.RUNNING


def test_the_notice_is_the_reclaim_policys_window(
    team, running, clock, django_capture_on_commit_callbacks, scheduled
):
    policy = policy_get()
    policy.notice_seconds = 900
    policy.save()
    stop_at_the_limit(team)
    clock.set("2026-03-09 09:00:00")

    metered(running, django_capture_on_commit_callbacks)

    assert Instance.objects.get(pk=running.pk).stop_at == at("2026-03-09 09:15:00")


def test_without_the_option_the_hard_limit_only_blocks_launches(
    team, running, clock, django_capture_on_commit_callbacks
):
    services.budget_set(
        organization=team.organization, amount="500", hard_limit=True, by=team.owner.user
    )
    clock.set("2026-03-09 09:00:00")

    metered(running, django_capture_on_commit_callbacks)

    assert Instance.objects.get(pk=running.pk).state == State.RUNNING
    assert not AuditEntry.objects.filter(action="budget.instances_stopped").exists()


def test_stopping_needs_the_hard_limit(team):
    services.budget_set(
        organization=team.organization,
        amount="500",
        hard_limit=False,
        stop_instances=True,
        by=team.owner.user,
    )
    assert Budget.objects.get().stop_instances is False


def test_the_budget_page_offers_and_keeps_the_choice(team, client_for):
    client = client_for(team.owner.user)
    url = f"/o/{team.organization.slug}/billing/budget/"

    assert "also stop running instances" in client.get(url).content.decode()
    client.post(url, {"amount": "500", "hard_limit": "on", "stop_instances": "on"})

    budget = Budget.objects.get()
    assert (budget.hard_limit, budget.stop_instances) == (True, True)
    page = client.get(url).content.decode()
    assert 'name="stop_instances"' in page
    assert page.split('name="stop_instances"')[1].split(">")[0].count("checked") == 1
