"""Reconciliation against the real simulator: lost machines, orphans, missed changes, reclaims."""

import importlib
import logging
import time
import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.instances import services, sync, tasks
from portal.instances.models import Instance, State
from portal.provisioning import get_backend
from tests.instances.conftest import machines_of

pytestmark = pytest.mark.slow


@pytest.fixture
def running(launch, eager, django_capture_on_commit_callbacks):
    """A launched instance brought up by its task; the running e-mail is cleared."""

    def make(name="train-1", **overrides) -> Instance:
        instance = launch(name, **overrides)
        with django_capture_on_commit_callbacks(execute=True):
            tasks.instance_provision.apply(args=[instance.pk])
        instance.refresh_from_db()
        assert instance.state == State.RUNNING
        mail.outbox.clear()
        return instance

    return make


@pytest.fixture
def reconcile(eager, django_capture_on_commit_callbacks):
    def run(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return sync.reconcile(**kwargs)

    return run


def test_a_machine_the_backend_lost_fails_the_instance_and_stops_billing(
    simulator, running, reconcile, team
):
    instance = running()
    simulator.control.lose(instance.backend_id)
    report = reconcile()
    assert report.lost == 1
    instance.refresh_from_db()
    assert instance.state == State.FAILED
    assert "lost this machine" in instance.state_reason
    assert instance.running_since is None
    assert instance.terminated_at is not None
    (message,) = mail.outbox
    assert message.to == [team.member.user.email]
    assert "lost this machine" in message.body
    # Running it again finds nothing more to do.
    assert reconcile().lost == 0


def test_a_machine_lost_while_provisioning_is_made_again_not_failed(simulator, launch, reconcile):
    simulator.control.set_delays(provision=600)
    instance = launch()
    assert sync.provision(instance.pk)
    instance.refresh_from_db()
    lost = instance.backend_id
    simulator.control.lose(lost)
    simulator.control.set_delays(provision=0)

    report = reconcile(redrive=False)

    assert (report.lost, report.remade) == (0, 1)
    instance.refresh_from_db()
    assert instance.state == State.RUNNING
    (machine,) = machines_of(simulator)
    assert machine["request_id"] == str(instance.request_id)
    assert instance.backend_id == machine["id"] != lost
    assert not [m for m in mail.outbox if "failed" in m.subject]
    assert reconcile().remade == 0


def test_an_orphan_whose_request_id_matches_a_pending_instance_is_adopted(
    simulator, launch, reconcile
):
    """The crash between "the backend made it" and "the portal recorded it"."""
    instance = launch()
    backend_id = get_backend().create(
        request_id=str(instance.request_id),
        instance_type="gpu_1x_h100",
        region="us-east-1",
        image=instance.image.code,
        ssh_keys=[k["public_key"] for k in instance.ssh_keys],
        name=instance.name,
        preemptible=False,
    )
    report = reconcile()
    assert report.adopted == 1
    instance.refresh_from_db()
    assert instance.backend_id == backend_id
    assert instance.state == State.RUNNING
    assert instance.events.filter(message__startswith="Adopted machine").exists()
    assert "is running" in mail.outbox[0].subject
    assert len(machines_of(simulator)) == 1


def test_an_orphan_no_instance_owns_is_terminated_and_logged(db, simulator, reconcile, caplog):
    backend_id = get_backend().create(
        request_id=str(uuid.uuid4()),
        instance_type="gpu_1x_h100",
        region="us-east-1",
        image="ubuntu",
        ssh_keys=[],
        name="stray",
        preemptible=False,
    )
    with caplog.at_level(logging.WARNING, logger="portal.instances.sync"):
        report = reconcile()
    assert report.orphans_terminated == 1
    assert machines_of(simulator) == []
    assert f"terminating orphan machine {backend_id}" in caplog.text


def test_a_machine_left_behind_by_an_ended_instance_is_terminated(simulator, running, reconcile):
    instance = running()
    # The portal gave up on it (e.g. a task ran out of retries) while the machine lives on.
    Instance.objects.filter(pk=instance.pk).update(state=State.FAILED)
    report = reconcile()
    assert report.leftovers_terminated == 1
    assert machines_of(simulator) == []


def test_a_state_change_nobody_reported_is_applied(simulator, running, reconcile):
    instance = running()
    get_backend().stop(instance.backend_id)
    report = reconcile()
    assert report.changes == 2
    instance.refresh_from_db()
    assert instance.state == State.STOPPED
    assert list(instance.events.values_list("to_state", flat=True))[-2:] == [
        State.STOPPING,
        State.STOPPED,
    ]
    assert instance.events.last().message.startswith("Found by reconciliation")


def test_machines_that_agree_cost_the_same_queries_however_many(simulator, running, reconcile):
    """Nothing to change: their instances are stamped synced in one UPDATE, not one each."""
    running("train-1")
    Instance.objects.update(synced_at=None)
    with CaptureQueriesContext(connection) as one:
        assert reconcile(redrive=False).changes == 0
    for n in range(2, 6):
        running(f"train-{n}")
    Instance.objects.update(synced_at=None)
    with CaptureQueriesContext(connection) as five:
        report = reconcile(redrive=False)
    assert (report.machines, report.changes) == (5, 0)
    assert len(five.captured_queries) == len(one.captured_queries)
    assert not Instance.objects.filter(synced_at__isnull=True).exists()


def test_a_fleet_read_in_parts_is_reconciled_whole(
    simulator, running, launch, reconcile, monkeypatch
):
    """A fleet lists more machines than one statement takes values (65,535 on PostgreSQL):
    the instances are read a part at a time, and every machine still finds its instance."""
    monkeypatch.setattr(
        importlib.import_module("portal.instances.sync.reconcile"), "IN_LIST_CHUNK", 2
    )
    for n in range(1, 6):
        running(f"train-{n}")
    pending = [launch(f"crashed-{n}") for n in range(1, 4)]
    for instance in pending:  # made by the backend, never recorded by the portal
        get_backend().create(
            request_id=str(instance.request_id),
            instance_type="gpu_1x_h100",
            region="us-east-1",
            image=instance.image.code,
            ssh_keys=[],
            name=instance.name,
            preemptible=False,
        )

    report = reconcile(redrive=False)

    assert (report.machines, report.adopted, report.orphans_terminated) == (8, 3, 0)
    assert (report.lost, report.errors) == (0, 0)
    assert set(Instance.objects.values_list("state", flat=True)) == {State.RUNNING}
    assert len(machines_of(simulator)) == 8


def test_an_agreeing_instance_is_stamped_synced_at_most_every_five_minutes(
    simulator, running, reconcile
):
    """A fleet of 100,000 that agrees with the backend is not rewritten at every pass."""
    instance = running("train-1")
    reconcile(redrive=False)
    instance.refresh_from_db()
    stamped = instance.synced_at
    assert stamped is not None

    with CaptureQueriesContext(connection) as again:
        reconcile(redrive=False)
    instance.refresh_from_db()
    assert instance.synced_at == stamped
    assert not [q for q in again.captured_queries if '"synced_at" =' in q["sql"]]

    Instance.objects.filter(pk=instance.pk).update(synced_at=stamped - timedelta(minutes=6))
    reconcile(redrive=False)
    instance.refresh_from_db()
    assert instance.synced_at > stamped


def test_a_request_the_backend_has_not_acted_on_is_not_walked_back(
    simulator, running, reconcile, team
):
    instance = running()
    services.instance_stop(membership=team.member, instance=instance)  # task not run yet
    reconcile(redrive=False)
    instance.refresh_from_db()
    assert instance.state == State.STOPPING


def test_a_reclaim_is_announced_at_once_then_interrupts_and_stops_billing(
    simulator, running, reconcile, team
):
    instance = running(preemptible=True)
    simulator.control.reclaim(machine_ids=[instance.backend_id], notice_seconds=1.5)
    reconcile()
    instance.refresh_from_db()
    assert instance.state == State.RUNNING
    assert instance.reclaim_at is not None
    (notice,) = mail.outbox
    assert f"interrupted at {instance.reclaim_at:%H:%M:%S}" in notice.subject

    time.sleep(1.7)
    reconcile()
    instance.refresh_from_db()
    assert instance.state == State.INTERRUPTED
    assert instance.terminated_at == instance.reclaim_at  # billing stopped at that second
    assert instance.running_since is None
    interrupted = mail.outbox[1]
    assert "was interrupted" in interrupted.subject
    assert f"/o/acme/instances/launch/?from={instance.pk}" in interrupted.body
    assert len(mail.outbox) == 2


def test_an_instance_stuck_in_transition_gets_its_task_again(simulator, launch, reconcile):
    instance = launch()
    Instance.objects.filter(pk=instance.pk).update(
        state=State.PROVISIONING, state_changed_at=timezone.now() - timedelta(minutes=10)
    )
    report = reconcile()
    assert report.redriven == 1
    instance.refresh_from_db()
    assert instance.state == State.RUNNING
    assert len(machines_of(simulator)) == 1


def test_the_reconcile_task_runs_one_at_a_time(db, simulator, eager):
    from django.core.cache import cache

    cache.add(tasks.RECONCILE_LOCK, "1", timeout=60)
    assert tasks.instances_reconcile.apply().result is None
    cache.delete(tasks.RECONCILE_LOCK)
    assert tasks.instances_reconcile.apply().result["machines"] == 0


def test_the_periodic_tasks_are_registered_with_beat(db):
    from django_celery_beat.models import PeriodicTask

    registered = dict(PeriodicTask.objects.values_list("task", "interval__every"))
    assert registered["portal.instances.tasks.instances_reconcile"] == 15
    assert registered["portal.instances.tasks.capacity_refresh"] == 30


def test_a_reclaim_notice_schedules_a_look_when_the_notice_ends(
    simulator, running, monkeypatch, django_capture_on_commit_callbacks
):
    instance = running(preemptible=True)
    scheduled = []
    monkeypatch.setattr(
        tasks.instance_poll,
        "apply_async",
        lambda args, countdown: scheduled.append((args, countdown)),
    )
    simulator.control.reclaim(machine_ids=[instance.backend_id], notice_seconds=60)
    with django_capture_on_commit_callbacks(execute=True):
        sync.reconcile()
        sync.reconcile()  # the second run sees the notice recorded: nothing more
    ((args, countdown),) = scheduled
    assert args == (instance.pk,)
    assert 55 < countdown <= 61
