"""The issue's fault test: 10 launches of 4-node clusters against a backend where 30 % of calls
fail and some answers come too late (after the call took effect). Every cluster ends with all
its nodes running or with no machine at all; the backend holds no machine that is not a node of
a running cluster; no partial cluster is billed.

The tasks run in-process (eager), with the driver's own retries off and a short task retry
budget, so that faults reach the task and some launches are given up. Reconciliation (beat
runs it every 15 s) then cleans up what given-up launches left behind.
"""

import collections

import pytest

from portal.billing.models import UsageInterval
from portal.clusters.models import Cluster, State
from portal.clusters.tasks import cluster_drive
from portal.instances import sync
from portal.instances.models import Instance
from portal.instances.models import State as NodeState
from portal.provisioning import TransientError
from tests.instances.conftest import machines_of, set_quota

pytestmark = pytest.mark.slow

CLUSTERS = 10
NODES = 4


def test_ten_four_node_clusters_through_a_flaky_backend_end_whole_or_not_at_all(
    simulator, launch_cluster, team, catalog, eager, settings, django_capture_on_commit_callbacks
):
    set_quota(team.organization, catalog.us_east, catalog.h100, on_demand=64)
    settings.INSTANCE_TASK_MAX_RETRIES = 2
    settings.CLUSTER_STALE_AFTER = 0
    simulator.control.set_faults(
        error_next=5,  # at least these, whatever the draws: a cluster reads its nodes in one call
        error_rate=0.3,
        slow_rate=0.05,
        slow_seconds=1.3,  # past the driver's 1 s read time-out
        slow_after=True,  # the call takes effect, the answer comes too late
    )

    clusters = [launch_cluster(f"job-{n}", nodes=NODES) for n in range(CLUSTERS)]
    with django_capture_on_commit_callbacks(execute=True):
        for cluster in clusters:
            cluster_drive.apply(args=[cluster.pk, "provision"])
        # Reconciliation under the same faults, as beat would run it (it re-drives clusters).
        for _ in range(6):
            try:
                sync.reconcile(redrive=True)
            except TransientError:
                continue

    stats = simulator.control.state()["stats"]
    assert stats["errors"] >= 5, stats  # the faults did happen

    simulator.control.set_faults(error_rate=0, slow_rate=0)
    with django_capture_on_commit_callbacks(execute=True):
        sync.reconcile()
        sync.reconcile()

    final = list(Cluster.objects.filter(pk__in=[c.pk for c in clusters]))
    states = collections.Counter(c.state for c in final)
    assert set(states) <= {State.RUNNING, State.FAILED}, states
    assert states[State.RUNNING] >= 1, states

    alive = machines_of(simulator)
    running_nodes = {
        n.backend_id: n
        for n in Instance.objects.filter(
            cluster_id__in=[c.pk for c in final if c.state == State.RUNNING]
        )
    }
    # No orphan: every machine the backend still holds is a node of a running cluster.
    assert sorted(m["id"] for m in alive) == sorted(running_nodes), (alive, running_nodes)
    for cluster in final:
        nodes = list(cluster.nodes)
        assert len(nodes) == NODES
        if cluster.state == State.RUNNING:
            assert {n.state for n in nodes} == {NodeState.RUNNING}
            assert all(m["state"] == "running" for m in alive if m["id"] in running_nodes)
        else:
            # Failed whole: no node ever ran, so no node was billed, and the quota is back.
            assert cluster.state_reason
            assert all(n.state in (NodeState.FAILED, NodeState.TERMINATED) for n in nodes)
            assert all(n.quota_released_at is not None for n in nodes)
            assert not UsageInterval.objects.filter(instance__in=nodes).exists()
    print(f"\n{dict(states)}; backend stats {stats}")
