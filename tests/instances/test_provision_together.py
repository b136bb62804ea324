"""Single launches waiting at one moment are provisioned together by one run, each with its
own machine, timeline, audit entries, webhooks and e-mail; a failure stays with its launch."""

import logging
import threading
import time

import pytest
import structlog
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.audit.models import AuditEntry
from portal.instances import tasks
from portal.instances.models import Instance, State
from portal.notifications.models import Notification
from portal.quotas.models import Quota
from tests.instances.conftest import machines_of
from tests.instances.worker import purge_broker

pytestmark = pytest.mark.slow


@pytest.fixture
def run(eager, django_capture_on_commit_callbacks):
    def apply(instance: Instance) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            tasks.instance_provision.apply(args=[instance.pk])

    return apply


def test_one_run_provisions_every_launch_waiting_each_with_its_own_machine_and_record(
    simulator, launch, run
):
    # The test's transaction never commits: the launches wait, no task of theirs runs.
    launches = [launch(f"train-{n}") for n in range(3)]

    run(launches[0])

    machines = {m["request_id"]: m["id"] for m in machines_of(simulator)}
    for instance in launches:
        instance.refresh_from_db()
        assert instance.state == State.RUNNING and instance.ip
        assert machines[str(instance.request_id)] == instance.backend_id
        states = [s for s in instance.events.values_list("to_state", flat=True) if s]
        assert states == [State.PENDING, State.PROVISIONING, State.RUNNING]
        audited = AuditEntry.objects.filter(
            action="instance.state_changed", target_id=str(instance.pk)
        ).values_list("detail__to", flat=True)
        assert sorted(audited) == [State.PROVISIONING, State.RUNNING]
    running = Notification.objects.filter(kind="instance_running")
    assert sorted(n.params["instance_id"] for n in running) == sorted(i.pk for i in launches)
    assert len({i.ip for i in launches}) == 3


def test_a_runs_queries_do_not_grow_with_the_launches_it_takes(simulator, launch, run):
    def queries_of_a_run(n: int, prefix: str) -> int:
        waiting = [launch(f"{prefix}-{i}") for i in range(n)]
        with CaptureQueriesContext(connection) as queries:
            run(waiting[0])
        running = Instance.objects.filter(pk__in=[i.pk for i in waiting], state=State.RUNNING)
        assert running.count() == n
        # Each launch's "running" e-mail is its own outbox row (sent here at once, row by
        # row, as Celery's eager mode runs the delivery): counted apart.
        return len([q for q in queries if "notifications_notification" not in q["sql"]])

    assert queries_of_a_run(6, "b") == queries_of_a_run(2, "a")


def test_a_launch_without_capacity_fails_alone(simulator, launch, run, team, catalog):
    l40s = {"region": "eu-west-1", "instance_type": "gpu_1x_l40s"}
    first = launch("a", **l40s)
    # FLEET has one L40S node of 8 GPUs in eu-west-1: seven more fill it (outside the quota).
    for n in range(7):
        Instance.objects.create(
            organization=first.organization,
            name=f"fill-{n}",
            instance_type=first.instance_type,
            region=first.region,
            image=first.image,
            gpus=1,
            quota_released_at=first.created_at,
        )
    late = launch("b", **l40s)
    h100 = launch("c")

    run(first)

    # Nine launches for eight L40S GPUs, asked for at once: the backend refuses one of them.
    l40s_launches = Instance.objects.filter(instance_type=first.instance_type)
    failed = l40s_launches.get(state=State.FAILED)
    assert failed.state_reason.startswith("No free capacity for 1x L40S 48GB in EU West")
    assert l40s_launches.filter(state=State.RUNNING).count() == 8
    h100.refresh_from_db()
    assert h100.state == State.RUNNING
    quota = Quota.objects.get(
        organization=team.organization, region=catalog.eu_west, gpu_model=catalog.l40s
    )
    # a's and b's GPUs count, the fill is outside the quota; a refused launch's comes back.
    assert quota.on_demand_used == (1 if failed.pk in (first.pk, late.pk) else 2)


def test_a_transient_error_hands_that_launch_to_its_own_task(simulator, launch, run):
    first, second = launch("a"), launch("b")
    simulator.control.set_faults(error_next=1)  # the run's first create: a's

    run(second)  # a's create fails in b's run; a retries on its own task

    for instance in (first, second):
        instance.refresh_from_db()
        assert instance.state == State.RUNNING
    assert len(machines_of(simulator)) == 2


def test_a_launch_terminated_meanwhile_is_left_alone(simulator, launch, run, team):
    from portal.instances import services

    first, second = launch("a"), launch("b")
    services.instance_terminate(membership=team.member, instance=second)

    run(first)

    second.refresh_from_db()
    assert second.state in (State.TERMINATING, State.TERMINATED)
    assert [m["request_id"] for m in machines_of(simulator)] == [str(first.request_id)]


def test_each_launch_provisioned_together_writes_its_lines_under_its_own_request(
    simulator, launch, run
):
    """The run's task carries the first launch's request; the other launch's lines (its moves,
    its backend calls) carry the request that launched it, so a launch can be followed from
    the click to the backend."""
    lines: list[tuple[str, object]] = []

    class Remember(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            request = structlog.contextvars.get_contextvars().get("request_id")
            lines.append((record.getMessage(), request))

    with structlog.contextvars.bound_contextvars(request_id="req-first", org="first"):
        first = launch("first")
    with structlog.contextvars.bound_contextvars(request_id="req-second", org="second"):
        second = launch("second")
    handler = Remember(level=logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        with structlog.contextvars.bound_contextvars(request_id="req-first", org="first"):
            run(first)
            after = structlog.contextvars.get_contextvars().get("request_id")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)

    def requests_of(instance: Instance, text: str) -> set[object]:
        return {
            r
            for message, r in lines
            if f"{instance.pk} {instance.name}:" in message and text in message
        }

    assert requests_of(second, "pending -> provisioning") == {"req-second"}
    assert requests_of(second, "provisioning -> running") == {"req-second"}
    assert requests_of(first, "pending -> provisioning") == {"req-first"}
    creates = [r for m, r in lines if m.startswith("backend call simulator POST /v1/machines")]
    assert sorted(map(str, creates)) == ["req-first", "req-second"]
    # Outside each launch's own lines, the task's context is back.
    assert after == "req-first"


@pytest.mark.django_db(transaction=True)
def test_launches_made_during_a_run_are_taken_together_by_the_next_once_it_ends(simulator, launch):
    """A run started while another is under way (the worker's other process) waits for it to
    end, then takes every launch that came meanwhile in one go: fewer, larger runs at a stream
    of launches, not one overlapping run per launch or two."""
    from portal.instances import sync

    first = launch("a")  # committed: its own run goes to the broker, which no worker reads
    # The first run's create takes effect at once and answers half a second later.
    simulator.control.set_faults(slow_next=1, slow_seconds=0.5, slow_after=True)
    outcomes: dict[str, sync.Outcome] = {}

    def first_run() -> None:
        try:
            outcomes["first"] = sync.provision_pending(first.pk)
        finally:
            connection.close()

    thread = threading.Thread(target=first_run)
    thread.start()
    deadline = time.monotonic() + 10
    while not machines_of(simulator) and time.monotonic() < deadline:
        time.sleep(0.02)
    later = [launch("b"), launch("c")]

    try:
        second = sync.provision_pending(later[0].pk)
    finally:
        thread.join(10)
        purge_broker()  # the runs and e-mails queued: no later worker test may take them

    assert outcomes["first"].claimed == {first.pk}
    assert second.claimed == {i.pk for i in later}
    first_up = first.events.get(to_state=State.RUNNING).at
    for instance in later:
        instance.refresh_from_db()
        assert instance.state == State.RUNNING
        assert instance.events.get(to_state=State.PROVISIONING).at >= first_up
