"""The issue's fault test: 50 launches against a backend where 30 % of calls fail and some time
out (after taking effect). Every instance ends running or failed, the backend holds exactly one
machine per running instance and none more, and the portal's states match the backend's.

The tasks run in-process (eager), with the driver's own retries off and a short task retry
budget, so that faults reach the tasks and some launches are given up. Reconciliation, which
beat runs every 30 s in production, then cleans up what the given-up launches left behind.
"""

import collections

import pytest

from portal.instances import sync, tasks
from portal.instances.models import Instance, State
from portal.provisioning import TransientError
from tests.instances.conftest import machines_of, set_quota

pytestmark = pytest.mark.slow

LAUNCHES = 50


def test_fifty_launches_through_a_flaky_backend_end_consistent(
    simulator, launch, team, catalog, eager, settings, django_capture_on_commit_callbacks
):
    set_quota(team.organization, catalog.us_east, catalog.h100, on_demand=64)
    settings.INSTANCE_TASK_MAX_RETRIES = 2
    simulator.control.set_faults(
        error_rate=0.3,
        slow_rate=0.05,
        slow_next=1,  # at least one late answer, whatever the random draws give
        slow_seconds=1.3,  # past the driver's 1 s read time-out
        slow_after=True,  # the call takes effect, the answer comes too late
    )

    instances = [launch(f"job-{n:02d}") for n in range(LAUNCHES)]
    with django_capture_on_commit_callbacks(execute=True):
        for instance in instances:
            tasks.instance_provision.apply(args=[instance.pk])
        # Reconciliation under the same faults, as beat would run it; a run whose list() fails
        # is simply retried by the next one.
        for _ in range(6):
            try:
                sync.reconcile(redrive=True)
            except TransientError:
                continue

    stats = simulator.control.state()["stats"]
    assert stats["errors"] >= 20 and stats["slow"] >= 1, stats  # the faults did happen

    simulator.control.set_faults(error_rate=0, slow_rate=0)
    with django_capture_on_commit_callbacks(execute=True):
        sync.reconcile()

    final = {i.pk: i for i in Instance.objects.filter(pk__in=[i.pk for i in instances])}
    states = collections.Counter(i.state for i in final.values())
    assert set(states) <= {State.RUNNING, State.FAILED}, states
    assert states[State.RUNNING] >= LAUNCHES // 2, states

    alive = machines_of(simulator)
    by_request = collections.Counter(m["request_id"] for m in alive)
    running = {str(i.request_id): i for i in final.values() if i.state == State.RUNNING}
    # Exactly one machine per running instance, and none more.
    assert by_request == collections.Counter(list(running)), (by_request, running)
    for machine in alive:
        instance = running[machine["request_id"]]
        assert machine["id"] == instance.backend_id
        assert machine["state"] == "running"  # the portal's state matches the backend's
        assert machine["ip"] == instance.ip
    for instance in final.values():
        if instance.state == State.FAILED:
            assert instance.state_reason
            assert instance.quota_released_at is not None
    print(f"\n{dict(states)}; backend stats {stats}")
