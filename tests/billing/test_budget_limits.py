"""Budgets checked when usage is metered, and a hard limit that stops running instances."""

import pytest
from django.core import mail

from portal.audit.models import AuditEntry
from portal.billing import services
from portal.billing.models import Budget, BudgetAlert
from portal.instances.models import Instance, State
from portal.instances.signals import instance_state_changed
from tests.billing.conftest import timeline


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


def test_the_hard_limit_can_stop_running_instances_and_says_which(
    team, outsider, running, make_instance, clock, django_capture_on_commit_callbacks
):
    elsewhere = make_instance(outsider.organization, name="theirs")
    timeline(elsewhere, ("2026-03-01 00:00:00", "running"))
    services.budget_set(
        organization=team.organization,
        amount="500",
        hard_limit=True,
        stop_instances=True,
        by=team.owner.user,
    )
    clock.set("2026-03-09 09:00:00")  # 201 h: 500.49

    metered(running, django_capture_on_commit_callbacks)

    running.refresh_from_db()
    assert running.state == State.STOPPING
    assert Instance.objects.get(pk=elsewhere.pk).state == State.RUNNING
    entry = AuditEntry.objects.get(action="budget.instances_stopped")
    assert entry.detail["instances"] == [running.pk]
    assert entry.actor_display == "Backfill, budget hard limit"
    stop = AuditEntry.objects.get(action="instance.action")
    assert stop.actor_display == "Backfill, budget hard limit"
    stopped = [m for m in mail.outbox if "running instance stopped" in m.subject]
    assert [m.subject for m in stopped][:1] == [
        "[Backfill] Acme AI reached its budget: 1 running instance stopped"
    ]
    assert sorted(m.to[0] for m in stopped) == sorted(
        [team.owner.user.email, team.billing.user.email]
    )
    body = stopped[0].body
    assert "- steady (1x H100 80GB in us-east-1)" in body
    assert "Their disks are kept" in body and "raise the budget" in body

    mail.outbox.clear()
    metered(running, django_capture_on_commit_callbacks)  # once a month, not at every meter
    assert not [m for m in mail.outbox if "stopped" in m.subject]


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
