"""Driving clusters through the provisioning backend: what the cluster's one Celery task calls.

A cluster is made by ONE `cluster_create` call (all nodes or none) and recorded in one
transaction; afterwards one task looks at all its nodes per round (ONE `cluster_machines`
read) and applies what changed in one transaction, the nodes that move alike moved together
(`portal.instances.lifecycle`'s `*_many`), then settles the cluster (`lifecycle.settle`). No
per-node task ever runs for a cluster's node. Every function takes the cluster's id, may run
any number of times, and returns whether the cluster still needs watching. Transient backend
errors propagate to the task, which retries with backoff and finally calls `give_up`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress

from django.db import transaction
from django.utils import timezone

from portal.clusters import lifecycle
from portal.clusters.models import Cluster, ClusterEvent, State
from portal.instances import lifecycle as node_lifecycle
from portal.instances.models import FINAL_STATES as NODE_FINAL_STATES
from portal.instances.models import TRANSITIONAL_STATES as NODE_TRANSITIONAL_STATES
from portal.instances.models import Instance, InstanceEvent
from portal.instances.models import State as NodeState
from portal.instances.sync import apply_machine, apply_machines, machine_lost
from portal.provisioning import (
    CapacityError,
    InvalidState,
    Machine,
    MachineState,
    NotFound,
    PermanentError,
    get_backend,
    supports_clusters,
)
from portal.volumes.selectors import volume_backend_ids_for_instance

logger = logging.getLogger(__name__)


def _load(cluster_id: int) -> Cluster | None:
    return (
        Cluster.objects.select_related("instance_type", "region", "image", "organization")
        .filter(pk=cluster_id)
        .first()
    )


def _nodes(cluster_id: int) -> list[Instance]:
    return list(
        Instance.objects.select_related("instance_type", "region", "organization")
        .filter(cluster_id=cluster_id)
        .order_by("node_index")
    )


def _fail_all(cluster: Cluster, reason: str) -> None:
    """Nothing was made: every node and the cluster end failed (their quota comes back)."""
    with transaction.atomic():
        alive = Instance.objects.filter(cluster_id=cluster.pk).exclude(state__in=NODE_FINAL_STATES)
        node_lifecycle.mark_failed_many(alive.values_list("pk", flat=True), reason=reason)
        with suppress(lifecycle.IllegalTransition):
            lifecycle.transition(cluster.pk, State.FAILED, reason=reason)


def _no_room(cluster: Cluster, error: CapacityError) -> str:
    fits = (
        f" Only {error.available} of them fit together right now."
        if error.available is not None
        else ""
    )
    return (
        f"The backend cannot place {cluster.node_count} nodes of {cluster.instance_type.name} "
        f"together in {cluster.region.name}.{fits} Nothing was created or billed; launch a "
        "smaller cluster, or try again later."
    )


def _record(cluster: Cluster, machines: list[Machine]) -> None:
    """The backend's answer, for all nodes in one transaction: the nodes without a machine yet
    are locked, and given theirs in one UPDATE (a retried task finds none left)."""
    now = timezone.now()
    by_request = {m.request_id: m for m in machines}
    with transaction.atomic():
        made = []
        for node in (
            Instance.objects.select_for_update()
            .filter(cluster_id=cluster.pk, backend_id="")
            .only("pk", "request_id", "backend_id", "private_ip", "launched_at")
            .order_by("pk")
        ):
            machine = by_request.get(str(node.request_id))
            if machine is None:
                continue
            node.backend_id, node.private_ip = machine.backend_id, machine.private_ip
            made.append(node)
        if not made:
            return
        Instance.objects.filter(pk__in=[node.pk for node in made]).update(launched_at=now)
        Instance.objects.bulk_update(made, ["backend_id", "private_ip"])
        InstanceEvent.objects.bulk_create(
            InstanceEvent(
                instance_id=node.pk,
                at=now,
                message=f"The backend made machine {node.backend_id} "
                f"({node.private_ip or 'no private address'}) for the cluster.",
            )
            for node in made
        )
        ClusterEvent.objects.create(
            cluster=cluster,
            at=now,
            message=f"The backend placed all {len(machines)} nodes together.",
        )


def provision(cluster_id: int) -> bool:
    """Make every node with one `cluster_create` (idempotent on the cluster's request id)."""
    cluster = _load(cluster_id)
    if cluster is None or cluster.state not in (State.PENDING, State.PROVISIONING):
        return _watching(cluster)
    with transaction.atomic():  # the cluster and all its nodes move together
        with suppress(lifecycle.IllegalTransition):
            lifecycle.transition(
                cluster_id,
                State.PROVISIONING,
                message=f"Asking the backend for {cluster.node_count} nodes together.",
            )
        pending = Instance.objects.filter(cluster_id=cluster_id, state=NodeState.PENDING)
        node_lifecycle.mark_provisioning_many(
            pending.values_list("pk", flat=True), message="Asking for the cluster's nodes."
        )
    backend = get_backend()
    if not supports_clusters(backend):
        _fail_all(cluster, "This provider's backend cannot place clusters. Nothing was billed.")
        return False
    nodes = _nodes(cluster_id)
    if any(not node.backend_id for node in nodes):
        try:
            machines = backend.cluster_create(
                request_id=str(cluster.request_id),
                instance_type=cluster.instance_type.code,
                region=cluster.region.code,
                image=cluster.image.code,
                nodes=cluster.node_count,
                ssh_keys=[key["public_key"] for key in cluster.ssh_keys],
                volumes=cluster_volume_ids(cluster),
                preemptible=cluster.preemptible,
                name=cluster.name,
                account=cluster.organization.slug,
            )
        except CapacityError as error:
            _fail_all(cluster, _no_room(cluster, error))
            return False
        except PermanentError as error:
            _fail_all(cluster, f"The backend refused to create the cluster: {error}")
            return False
        _record(cluster, machines)
    return poll(cluster_id, backend)


def cluster_volume_ids(cluster: Cluster) -> list[str]:
    """The backend ids of the volumes the cluster mounts: every node has the same ones."""
    head = Instance.objects.filter(cluster_id=cluster.pk, node_index=0).first()
    return volume_backend_ids_for_instance(instance_id=head.pk) if head else []


def act(cluster_id: int) -> bool:
    """Ask the backend to stop, start or terminate each node that was asked to, then look."""
    cluster = _load(cluster_id)
    if cluster is None:
        return False
    if cluster.state in (State.PENDING, State.PROVISIONING):
        return provision(cluster_id)
    backend = get_backend()
    calls: dict[str, Callable[[str], None]] = {
        NodeState.STOPPING: backend.stop,
        NodeState.STARTING: backend.start,
        NodeState.TERMINATING: backend.terminate,
    }
    for node in _nodes(cluster_id):
        call = calls.get(node.state)
        if call is None:
            continue
        if not node.backend_id:
            if node.state == NodeState.TERMINATING:
                _end_unmade_node(node, backend)
            continue
        try:
            call(node.backend_id)
        except NotFound:
            machine_lost(node)
        except CapacityError:
            with suppress(node_lifecycle.IllegalTransition):
                node_lifecycle.mark_stopped(node.pk, message="No free capacity to start it now.")
        except InvalidState:
            with suppress(NotFound):
                apply_machine(node, backend.get(node.backend_id))
    return poll(cluster_id, backend)


def _end_unmade_node(node: Instance, backend) -> None:
    """A node terminated before its machine was recorded: the backend may have made it."""
    machine = next((m for m in backend.list() if m.request_id == str(node.request_id)), None)
    if machine is None:
        with suppress(node_lifecycle.IllegalTransition):
            node_lifecycle.mark_terminated(node.pk, message="Terminated before it was made.")
        return
    Instance.objects.filter(pk=node.pk, backend_id="").update(backend_id=machine.backend_id)
    backend.terminate(machine.backend_id)


def poll(cluster_id: int, backend=None) -> bool:
    """Look at every node at once (one `cluster_machines` read), apply what changed in one
    transaction, settle the cluster."""
    cluster = _load(cluster_id)
    if cluster is None:
        return False
    backend = backend or get_backend()
    nodes = [n for n in _nodes(cluster_id) if n.backend_id and n.state not in NODE_FINAL_STATES]
    if not nodes:
        machines: dict[str, Machine] = {}
    else:
        machines = {m.backend_id: m for m in backend.cluster_machines(str(cluster.request_id))}
    seen = [(node, machines.get(node.backend_id)) for node in nodes]
    # Coming up (or starting again), a node that runs is not billed before all run: the nodes
    # go to running together, in one transaction, when the last machine is up.
    hold = cluster.state in (State.PROVISIONING, State.STARTING) and not all(
        machine is not None and machine.state == MachineState.RUNNING for _, machine in seen
    )
    with transaction.atomic():
        found: list[tuple[Instance, Machine]] = []
        for node, machine in seen:
            if machine is None:
                machine_lost(node)
            elif not (hold and machine.state == MachineState.RUNNING):
                found.append((node, machine))
        apply_machines(found)
    if lifecycle.settle(cluster_id):
        return act(cluster_id)
    return _watching(_load(cluster_id))


def _watching(cluster: Cluster | None) -> bool:
    """Whether the cluster or one of its nodes is still on its way somewhere."""
    if cluster is None:
        return False
    if cluster.is_transitional:
        return True
    return Instance.objects.filter(
        cluster_id=cluster.pk, state__in=NODE_TRANSITIONAL_STATES
    ).exists()


def give_up(cluster_id: int, *, error: Exception) -> None:
    """The task ran out of retries against a backend that keeps failing."""
    cluster = _load(cluster_id)
    if cluster is None or cluster.is_final:
        return
    if cluster.state in (State.PENDING, State.PROVISIONING):
        # Whatever the backend may have made for it is terminated by reconciliation: its
        # nodes are failed instances, and a machine of an ended instance never survives it.
        _fail_all(
            cluster,
            "Backfill could not reach the provisioning backend after several attempts "
            f"({error}). Nothing was billed.",
        )
        return
    lifecycle.note(cluster_id, f"The backend did not answer ({error}); Backfill keeps trying.")
