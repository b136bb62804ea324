"""A real Celery worker is SIGKILLed in the middle of provisioning; a new one finishes the job.

How the task comes back: the tasks are `acks_late`, so the killed worker never acknowledged
the message; Redis keeps it in its "unacked" set, and a worker restores it to the queue once
it is older than the broker's visibility timeout. Production keeps 30 s (live workers renew
the messages they hold: test_worker_visibility.py); this test's worker runs
tests.instances.worker_settings with a 3 s visibility timeout, so the broker itself
re-delivers the message within seconds. (Reconciliation's re-drive of
instances stuck in transition is the second line of defence; see test_reconcile.py.)

The kill lands at the worst moment: the backend has made the machine, but its answer is late
(the simulator's slow_after fault), so the portal has not recorded it. The new worker asks
again with the same request id, gets the same machine, and the instance comes up with exactly
one machine behind it.
"""

import re
import time

import pytest

from portal.instances.models import Instance, State
from tests.instances.conftest import machines_of
from tests.instances.worker import CeleryWorker, purge_broker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_until(condition, timeout: float, what: str, worker=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{worker.log() if worker else ''}")


def test_a_worker_killed_mid_provisioning_is_replaced_and_makes_exactly_one_machine(
    simulator, launch, tmp_path
):
    purge_broker()
    # The create call takes effect at once but answers only after 30 s.
    simulator.control.set_faults(slow_next=1, slow_seconds=30, slow_after=True)
    worker = CeleryWorker(
        tmp_path,
        simulator=simulator,
        extra_env={"TEST_WORKER_VISIBILITY_TIMEOUT": "3", "PROVISIONING_TIMEOUT": "60"},
    )
    worker.start()
    try:
        instance = launch("survivor")  # committed: the provisioning task goes to the broker

        def stuck_in_create():
            instance.refresh_from_db()
            return bool(machines_of(simulator)) and instance.state == State.PROVISIONING

        wait_until(stuck_in_create, 30, "the backend to make the machine", worker)
        instance.refresh_from_db()
        assert instance.backend_id == ""  # the portal has not heard of it yet
        worker.kill()
        first_log = worker.log()

        worker.start()  # a new worker; the broker re-delivers the unacknowledged task

        def running():
            instance.refresh_from_db()
            return instance.state == State.RUNNING

        wait_until(running, 60, "the instance to run", worker)
        # Metered on the commit of the transition to running, in the worker.
        from portal.billing.models import UsageInterval

        open_usage = UsageInterval.objects.filter(instance=instance, end__isnull=True)
        wait_until(open_usage.exists, 10, "the running time to be metered", worker)
    finally:
        worker.stop()

    machines = [m for m in machines_of(simulator) if m["request_id"] == str(instance.request_id)]
    assert len(machines) == 1
    assert machines_of(simulator) == machines
    assert instance.backend_id == machines[0]["id"]
    assert Instance.objects.count() == 1
    # The very message the killed worker had taken was delivered again to the new one.
    (task_id,) = re.findall(r"instance_provision\[([0-9a-f-]+)\] received", first_log)
    assert f"instance_provision[{task_id}] received" in worker.log()
