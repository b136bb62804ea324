"""Work held by a dead worker resumes within a minute; a long task never runs twice at once.

Redis has no acknowledgement tied to a connection: a message a worker took stays in Redis'
"unacked" set and any worker gives it back to the queue once it is older than the visibility
timeout (production: 30 s, looked for every 5 s). A live worker renews the messages it holds
every few seconds (portal.runtime.worker.KeepMessagesStep), so a task running longer than the
timeout is never handed to a second worker; and every run holds a lease on its task id
(LeasedTask), so even a message that did come back waits for the first run instead of running
alongside it.

The real-worker test scales the timeout down to 4 s so that it takes seconds, not minutes; the
production figures are checked by arithmetic below.
"""

import time
import uuid

import pytest
import redis
from celery import shared_task
from django.conf import settings

from portal.celery import app
from portal.instances.models import State
from portal.runtime.worker import DONE_KEY, LEASE_KEY, lease_seconds, renew_every
from tests.instances.conftest import machines_of
from tests.instances.worker import CeleryWorker, purge_broker

VISIBILITY = 4
PROVISION = "Task portal.instances.tasks.instance_provision["  # the worker's "received" line


def test_production_brings_back_a_dead_workers_work_within_a_minute():
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    worst_case = options["visibility_timeout"] + options["unacked_restore_interval"] * max(
        1, options["unacked_restore_throttle"]
    )
    assert worst_case <= 60
    assert renew_every(app) * 2 < options["visibility_timeout"]  # renewed twice within it
    assert settings.CELERY_TASK_ACKS_LATE and settings.CELERY_TASK_REJECT_ON_WORKER_LOST


@shared_task(bind=True)
def _lease_probe(self, marker: str) -> str:
    """Only for the tests below: records that its body ran."""
    redis.Redis.from_url(settings.CELERY_BROKER_URL).rpush(marker, self.request.id)
    return "ran"


@pytest.fixture
def broker():
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield client
    client.flushdb()


def _run_as_a_worker(task, task_id: str, *args):
    """Call the task as a worker does: a request with an id and a delivery, not eager."""
    task.push_request(
        id=task_id,
        is_eager=False,
        called_directly=False,
        delivery_info={"exchange": "", "routing_key": "backfill"},
        args=list(args),
        kwargs={},
        retries=0,
    )
    try:
        return task(*args)
    finally:
        task.pop_request()


def test_a_delivery_of_a_task_that_runs_elsewhere_waits_for_it(broker):
    task_id = str(uuid.uuid4())
    broker.set(LEASE_KEY + task_id, "another-worker", ex=30)

    result = _run_as_a_worker(_lease_probe, task_id, "probe-ran")

    assert result is None
    assert broker.llen("probe-ran") == 0  # the body did not run alongside the other run
    # It comes back later (same id), when the other run's lease would have ended.
    deferred = broker.lrange("backfill", 0, -1)
    assert len(deferred) == 1 and task_id.encode() in deferred[0]


def test_a_delivery_of_a_task_that_already_ran_does_nothing(broker):
    task_id = str(uuid.uuid4())
    broker.set(DONE_KEY + task_id, "1")

    assert _run_as_a_worker(_lease_probe, task_id, "probe-ran") is None
    assert broker.llen("probe-ran") == 0
    assert broker.llen("backfill") == 0


def test_a_run_takes_the_lease_and_marks_the_task_done(broker):
    task_id = str(uuid.uuid4())

    assert _run_as_a_worker(_lease_probe, task_id, "probe-ran") == "ran"

    assert broker.lrange("probe-ran", 0, -1) == [task_id.encode()]
    assert broker.exists(DONE_KEY + task_id)
    assert not broker.exists(LEASE_KEY + task_id)
    assert lease_seconds(app) >= 3


def _wait(condition, timeout: float, what: str, *workers):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n" + "\n".join(w.log() for w in workers))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_long_task_is_not_run_twice_and_resumes_quickly_after_its_worker_is_killed(
    simulator, launch, tmp_path
):
    purge_broker()
    # The backend makes the machine at once but answers only after 20 s: a long task.
    simulator.control.set_faults(slow_next=1, slow_seconds=20, slow_after=True)
    options = {"TEST_WORKER_VISIBILITY_TIMEOUT": str(VISIBILITY), "PROVISIONING_TIMEOUT": "60"}
    first = CeleryWorker(tmp_path / "first", simulator=simulator, extra_env=options)
    second = CeleryWorker(tmp_path / "second", simulator=simulator, extra_env=options)
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first.start()
    try:
        instance = launch("long-one")

        def creating():
            instance.refresh_from_db()
            return bool(machines_of(simulator)) and instance.state == State.PROVISIONING

        _wait(creating, 30, "the first worker to be in the backend's create", first)
        second.start()
        time.sleep(VISIBILITY * 3)  # three visibility timeouts while the first still runs it
        held = second.log()
        assert PROVISION not in held, held  # never handed to the second worker
        assert "running elsewhere" not in held

        first.kill()  # SIGKILL, mid-task: nothing acknowledged, nothing cleaned up
        killed = time.monotonic()
        resumed = _wait(
            lambda: PROVISION in second.log(), 30, "the second worker to resume", second
        )
        assert resumed - killed <= VISIBILITY + 5

        def running():
            instance.refresh_from_db()
            return instance.state == State.RUNNING

        _wait(running, 30, "the instance to run", second)
    finally:
        first.stop()
        second.stop()

    machines = machines_of(simulator)
    assert [m["request_id"] for m in machines] == [str(instance.request_id)]
    assert instance.backend_id == machines[0]["id"]
