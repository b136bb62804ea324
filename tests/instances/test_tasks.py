"""The Celery tasks against the real simulator (a subprocess), run in-process with .apply()."""

import pytest
from django.core import mail

from portal.instances import tasks
from portal.instances.capacity import capacity_snapshot
from portal.instances.models import Instance, State
from portal.quotas.models import Quota
from tests.instances.conftest import machines_of

pytestmark = pytest.mark.slow


@pytest.fixture
def run(eager, django_capture_on_commit_callbacks):
    """Run a task to completion here, with its on-commit e-mails, and reload the instance."""

    def apply(task, instance: Instance) -> Instance:
        with django_capture_on_commit_callbacks(execute=True):
            task.apply(args=[instance.pk])
        instance.refresh_from_db()
        return instance

    return apply


def test_provision_brings_the_instance_up_and_emails_the_ssh_command(simulator, launch, run, team):
    instance = run(tasks.instance_provision, launch("train-1"))
    assert instance.state == State.RUNNING
    assert instance.ip
    assert instance.backend_id
    assert instance.running_since is not None
    (machine,) = machines_of(simulator)
    assert machine["request_id"] == str(instance.request_id)
    assert machine["id"] == instance.backend_id
    assert machine["ssh_keys"] == [k["public_key"] for k in instance.ssh_keys]
    (message,) = mail.outbox
    assert message.to == [team.member.user.email]
    assert f"ssh ubuntu@{instance.ip}" in message.body
    states = list(instance.events.values_list("to_state", flat=True))
    assert [s for s in states if s] == [State.PENDING, State.PROVISIONING, State.RUNNING]


def test_provision_reads_the_catalog_rows_once_and_the_machine_in_one_session(
    simulator, launch, eager, django_capture_on_commit_callbacks, monkeypatch
):
    """The create needs the type, region, image and organization: the transition's locked read
    brings them, instead of four more queries after a refresh dropped them; the create and
    the look that follows share one driver (one HTTP session)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal.instances.sync import batch, steps

    instance = launch("train-1")
    drivers = []
    real = steps.get_backend
    for module in (batch, steps):
        monkeypatch.setattr(module, "get_backend", lambda: drivers.append(real()) or drivers[-1])
    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks(execute=True),
    ):
        tasks.instance_provision.apply(args=[instance.pk])

    instance.refresh_from_db()
    assert instance.state == State.RUNNING
    assert len(drivers) == 1
    alone = [
        q["sql"]
        for q in queries
        if q["sql"].startswith("SELECT")
        and any(
            f'FROM "{table}"' in q["sql"]
            for table in (
                "catalog_instancetype",
                "catalog_region",
                "catalog_image",
                "orgs_organization",
            )
        )
    ]
    assert alone == []
    # Each UPDATE of the instance row outside a transition: the backend id, then one for
    # everything the look found (synced_at and the IP together).
    outside = [
        q["sql"]
        for q in queries
        if q["sql"].startswith('UPDATE "instances_instance"') and '"state" =' not in q["sql"]
    ]
    assert len(outside) == 2 and '"ip" =' in outside[1] and '"synced_at" =' in outside[1]


def test_provision_audits_emits_meters_and_mails_every_transition(
    simulator, launch, run, team, monkeypatch
):
    """What provisioning guarantees, whatever it saves on the way: each of its transitions
    is audited and sent to the organization's webhooks, usage is metered on the commit of
    the one that starts billing, and the "running" e-mail goes out."""
    import json

    from portal.audit.models import AuditEntry
    from portal.billing.models import InstanceMeter, UsageInterval
    from portal.webhooks.models import EventType, WebhookDelivery
    from portal.webhooks.services import webhook_endpoint_create

    monkeypatch.setattr("portal.webhooks.tasks.webhook_deliver.delay", lambda pk: None)
    webhook_endpoint_create(
        membership=team.owner, url="https://hooks.example.com/b", event_types=EventType.values
    )
    metered = []
    from portal.billing import services as billing

    real, real_many = billing.usage_sync_instance, billing.usage_sync_instances

    def meter(*, instance_id):
        metered.append(instance_id)
        real(instance_id=instance_id)

    def meter_many(*, instance_ids):
        metered.extend(instance_ids)
        real_many(instance_ids=instance_ids)

    monkeypatch.setattr(billing, "usage_sync_instance", meter)
    monkeypatch.setattr(billing, "usage_sync_instances", meter_many)

    instance = run(tasks.instance_provision, launch("train-1"))

    assert instance.state == State.RUNNING
    changes = [
        (entry.detail["from"], entry.detail["to"])
        for entry in AuditEntry.objects.filter(
            action="instance.state_changed", target_id=str(instance.pk)
        ).order_by("id")
    ]
    assert changes == [("pending", "provisioning"), ("provisioning", "running")]
    sent = [
        (body["data"]["from_state"], body["data"]["to_state"])
        for body in (
            json.loads(d.body)
            for d in WebhookDelivery.objects.filter(event_type="instance.state_changed").order_by(
                "id"
            )
        )
    ]
    assert sent == changes
    # On the commit of the move to running (this test's transaction runs it at the end); the
    # move from pending to provisioning bills nothing and is not metered.
    assert metered == [instance.pk]
    (interval,) = UsageInterval.objects.filter(instance=instance)
    assert interval.start == instance.running_since.replace(microsecond=0) and interval.end is None
    last = instance.events.exclude(to_state="").order_by("id").last()
    assert InstanceMeter.objects.get(instance=instance).last_event_id == last.pk
    (message,) = mail.outbox
    assert message.to == [team.member.user.email]


def test_provisioning_twice_makes_one_machine(simulator, launch, run):
    instance = launch()
    run(tasks.instance_provision, instance)
    Instance.objects.filter(pk=instance.pk).update(state=State.PROVISIONING, backend_id="")
    instance = run(tasks.instance_provision, instance)
    assert instance.state == State.RUNNING
    assert len(machines_of(simulator)) == 1


def test_stop_start_reboot_terminate(simulator, launch, run, team, catalog):
    from portal.instances import services

    instance = run(tasks.instance_provision, launch())
    services.instance_stop(membership=team.member, instance=instance)
    instance = run(tasks.instance_stop, instance)
    assert instance.state == State.STOPPED
    assert instance.running_since is None
    assert machines_of(simulator)[0]["state"] == "stopped"

    services.instance_start(membership=team.member, instance=instance)
    instance = run(tasks.instance_start, instance)
    assert instance.state == State.RUNNING

    services.instance_reboot(membership=team.member, instance=instance)
    instance = run(tasks.instance_reboot, instance)
    assert instance.state == State.RUNNING

    services.instance_terminate(membership=team.member, instance=instance)
    instance = run(tasks.instance_terminate, instance)
    assert instance.state == State.TERMINATED
    assert machines_of(simulator) == []
    quota = Quota.objects.get(
        organization=team.organization, region=catalog.us_east, gpu_model=catalog.h100
    )
    assert quota.on_demand_used == 0
    assert len(mail.outbox) == 1  # only "running"; stop/start/terminate send nothing


def test_transient_errors_are_retried_until_it_works(simulator, launch, run):
    simulator.control.set_faults(error_next=4)
    instance = run(tasks.instance_provision, launch())
    assert instance.state == State.RUNNING
    assert len(machines_of(simulator)) == 1


def test_garbage_answers_are_retried(simulator, launch, run):
    simulator.control.set_faults(garbage_next=2, garbage_kind="missing_fields")
    instance = run(tasks.instance_provision, launch())
    assert instance.state == State.RUNNING


def test_a_create_that_took_effect_but_timed_out_is_not_made_twice(simulator, launch, run):
    simulator.control.set_faults(slow_next=1, slow_seconds=1.5, slow_after=True)
    instance = run(tasks.instance_provision, launch())
    assert instance.state == State.RUNNING
    (machine,) = machines_of(simulator)
    assert machine["id"] == instance.backend_id


def test_a_backend_that_keeps_failing_is_given_up_with_a_reason_and_an_email(
    simulator, launch, run, settings, team, catalog
):
    settings.INSTANCE_TASK_MAX_RETRIES = 2
    simulator.control.set_faults(error_rate=1.0)
    instance = run(tasks.instance_provision, launch())
    assert instance.state == State.FAILED
    assert "could not reach the provisioning backend after several attempts" in (
        instance.state_reason
    )
    (message,) = mail.outbox
    assert "failed" in message.subject
    assert "could not reach the provisioning backend" in message.body
    quota = Quota.objects.get(
        organization=team.organization, region=catalog.us_east, gpu_model=catalog.h100
    )
    assert quota.on_demand_used == 0


def test_no_capacity_fails_the_launch_clearly(simulator, launch, run):
    l40s = {"region": "eu-west-1", "instance_type": "gpu_1x_l40s"}
    first = run(tasks.instance_provision, launch("a", **l40s))
    assert first.state == State.RUNNING
    # FLEET has one L40S node of 8 GPUs in eu-west-1: fill it (outside the quota).
    for n in range(7):
        run(
            tasks.instance_provision,
            Instance.objects.create(
                organization=first.organization,
                name=f"fill-{n}",
                instance_type=first.instance_type,
                region=first.region,
                image=first.image,
                gpus=1,
                quota_released_at=first.created_at,
            ),
        )
    instance = run(tasks.instance_provision, launch("b", **l40s))
    assert instance.state == State.FAILED
    assert instance.state_reason.startswith("No free capacity for 1x L40S 48GB in EU West")
    assert "failed" in mail.outbox[-1].subject


def test_a_machine_that_fails_to_boot_fails_the_instance(simulator, launch, run):
    simulator.control.set_faults(boot_failure_rate=1.0)
    instance = run(tasks.instance_provision, launch())
    assert instance.state == State.FAILED
    assert "failed to boot" in instance.state_reason


def test_terminate_before_provisioning_makes_no_machine(simulator, launch, run, team):
    from portal.instances import services

    instance = launch()
    services.instance_terminate(membership=team.member, instance=instance)
    instance = run(tasks.instance_terminate, instance)
    assert instance.state == State.TERMINATED
    # the provisioning task, delivered late, does nothing
    instance = run(tasks.instance_provision, instance)
    assert instance.state == State.TERMINATED
    assert machines_of(simulator, alive_only=False) == []


def test_a_start_without_capacity_leaves_the_instance_stopped(simulator, launch, run, team):
    from portal.instances import services

    instance = run(tasks.instance_provision, launch(instance_type="gpu_8x_h100"))
    services.instance_stop(membership=team.member, instance=instance)
    instance = run(tasks.instance_stop, instance)
    simulator.control.set_fleet(
        {
            **simulator.control.state()["catalog"],
            "nodes": [
                {"region": "us-east-1", "gpu_model": "H100 80GB", "gpus": 8, "count": 1},
            ],
        }
    )
    other = run(tasks.instance_provision, launch("other", instance_type="gpu_8x_h100"))
    assert other.state == State.RUNNING
    services.instance_start(membership=team.member, instance=instance)
    instance = run(tasks.instance_start, instance)
    assert instance.state == State.STOPPED
    assert "No free capacity to start it" in instance.events.last().message


def test_a_machine_lost_while_polled_fails_the_instance(simulator, launch, run):
    instance = run(tasks.instance_provision, launch())
    simulator.control.lose(instance.backend_id)
    instance = run(tasks.instance_poll, instance)
    assert instance.state == State.FAILED
    assert "lost this machine" in instance.state_reason
    assert "failed" in mail.outbox[-1].subject


def test_a_machine_lost_while_provisioning_is_made_again_with_the_same_request_id(
    simulator, launch, run
):
    """The backend answered the create, then lost the machine (it crashed before writing it
    down): nothing was delivered yet, so the instance asks again instead of failing."""
    from portal.instances import sync

    simulator.control.set_delays(provision=600)
    instance = launch()
    assert sync.provision(instance.pk)  # made, and still booting
    instance.refresh_from_db()
    lost = instance.backend_id
    launched_at = instance.launched_at
    simulator.control.lose(lost)
    simulator.control.set_delays(provision=0)

    instance = run(tasks.instance_poll, instance)

    assert instance.state == State.RUNNING
    (machine,) = machines_of(simulator)
    assert machine["request_id"] == str(instance.request_id)
    assert instance.backend_id == machine["id"] != lost
    assert instance.launched_at == launched_at  # the settle deadline counts from the first
    assert instance.events.filter(message__contains=f"lost machine {lost} before it was ready")
    assert [m.subject for m in mail.outbox if "failed" in m.subject] == []


def test_resync_applies_what_the_backend_says(simulator, launch, run):
    instance = run(tasks.instance_provision, launch())
    simulator.control.fail(instance.backend_id, detail="GPU fell off the bus")
    instance = run(tasks.instance_resync, instance)
    assert instance.state == State.FAILED
    assert "GPU fell off the bus" in instance.state_reason


def test_capacity_refresh_stores_a_snapshot(simulator, eager, db):
    tasks.capacity_refresh.apply()
    snapshot = capacity_snapshot()
    assert snapshot is not None
    assert snapshot.entries[("us-east-1", "gpu_8x_h100")] == (8, 64, 64)
    assert snapshot.last_instance_id == 0  # launches after it are those with a higher id


def test_backoff_grows_exponentially_and_is_capped(settings):
    settings.INSTANCE_RETRY_BASE = 2
    settings.INSTANCE_RETRY_MAX = 60
    assert 1.6 <= tasks.backoff(0) <= 2.4
    assert 12.8 <= tasks.backoff(3) <= 19.2
    assert 48 <= tasks.backoff(10) <= 72


def test_every_task_acks_late():
    for task in (
        tasks.instance_provision,
        tasks.instance_poll,
        tasks.instance_stop,
        tasks.instance_start,
        tasks.instance_reboot,
        tasks.instance_terminate,
        tasks.instance_resync,
        tasks.instances_reconcile,
        tasks.capacity_refresh,
    ):
        assert task.acks_late, task.name


def test_poll_gives_up_on_a_machine_that_never_comes_up(simulator, launch, run, settings):
    simulator.control.set_delays(provision=600)
    settings.INSTANCE_SETTLE_TIMEOUT = 0
    instance = run(tasks.instance_provision, launch())
    assert instance.state == State.FAILED
    assert "did not become ready" in instance.state_reason
    assert machines_of(simulator) == []
