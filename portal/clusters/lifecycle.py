"""A cluster's lifecycle: one table of allowed transitions, one function applying them, and
`settle`, which moves a cluster where its nodes are.

    pending → provisioning → running ⇄ (stopping → stopped → starting) → terminating → terminated
    plus failed (never came up whole, or lost a node) and interrupted (reclaimed)

A cluster is used whole: a node that fails or is reclaimed ends the cluster, and `settle` asks
its other nodes to terminate at once (nothing more is billed for a cluster that cannot train).
Nodes change state only through `portal.instances.lifecycle`, as any instance, all nodes that
make the same move at once (its `*_many` functions); nothing here talks to the backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from portal.accounts.models import User
from portal.audit.services import audit_record
from portal.clusters import signals
from portal.clusters.models import FINAL_STATES, Cluster, ClusterEvent, State
from portal.instances import lifecycle as node_lifecycle
from portal.instances.models import FINAL_STATES as NODE_FINAL_STATES
from portal.instances.models import Instance
from portal.instances.models import State as NodeState
from portal.lib.errors import ApplicationError
from portal.notifications.services import notify

logger = logging.getLogger(__name__)

S = State
TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.PROVISIONING, S.FAILED, S.TERMINATING}),
    S.PROVISIONING: frozenset({S.RUNNING, S.FAILED, S.INTERRUPTED, S.TERMINATING}),
    S.RUNNING: frozenset({S.STOPPING, S.TERMINATING, S.FAILED, S.INTERRUPTED}),
    S.STOPPING: frozenset({S.STOPPED, S.TERMINATING, S.FAILED, S.INTERRUPTED}),
    S.STOPPED: frozenset({S.STARTING, S.TERMINATING, S.FAILED}),
    S.STARTING: frozenset({S.RUNNING, S.STOPPING, S.TERMINATING, S.FAILED, S.INTERRUPTED}),
    S.TERMINATING: frozenset({S.TERMINATED}),
    S.TERMINATED: frozenset(),
    S.FAILED: frozenset(),
    S.INTERRUPTED: frozenset(),
}

ACTIONS: dict[str, str] = {"stop": S.STOPPING, "start": S.STARTING, "terminate": S.TERMINATING}
# What each cluster action asks of every node (all of them at once).
NODE_REQUESTS: dict[str, Callable[..., node_lifecycle.Batch]] = {
    "stop": node_lifecycle.request_stop_many,
    "start": node_lifecycle.request_start_many,
    "terminate": node_lifecycle.request_terminate_many,
}
# The e-mail a transition sends (`cluster_<kind>`).
EMAILS: dict[str, str] = {S.RUNNING: "running", S.FAILED: "failed", S.INTERRUPTED: "interrupted"}


class IllegalTransition(ApplicationError):
    def __init__(self, message: str):
        super().__init__(message, code="illegal_transition")


def allowed_actions(state: str) -> list[str]:
    return [action for action, target in ACTIONS.items() if target in TRANSITIONS[state]]


def refusal(cluster: Cluster, action: str) -> str:
    target = ACTIONS[action]
    allowed = ", ".join(
        State(s).label.lower() for s, targets in TRANSITIONS.items() if target in targets
    )
    return (
        f"You cannot {action} {cluster.name} while it is {State(cluster.state).label.lower()}; "
        f"{action} works on {allowed} clusters."
    )


@dataclass(frozen=True)
class Change:
    cluster: Cluster
    from_state: str
    event: ClusterEvent


def transition(
    cluster_id: int,
    to: str,
    *,
    message: str = "",
    reason: str | None = None,
    actor: User | None = None,
    actor_kind: str | None = None,
    updates: dict[str, Any] | None = None,
) -> Change | None:
    """Move the cluster to `to` if TRANSITIONS allows it; None if it is there already."""
    now = timezone.now()
    with transaction.atomic():
        cluster = (
            Cluster.objects.select_for_update(of=("self",))
            .select_related("organization", "region", "instance_type", "image")
            .get(pk=cluster_id)
        )
        if cluster.state == to:
            return None
        from_state = cluster.state
        if to not in TRANSITIONS[from_state]:
            raise IllegalTransition(
                f"{cluster.name} cannot go from {State(from_state).label.lower()} "
                f"to {State(to).label.lower()}."
            )
        cluster.state = to
        cluster.state_changed_at = now
        if reason is not None:
            cluster.state_reason = reason
        if to in FINAL_STATES:
            cluster.terminated_at = now
        for field, value in (updates or {}).items():
            setattr(cluster, field, value)
        cluster.save(
            update_fields=[
                *("state", "state_changed_at", "state_reason", "terminated_at"),
                *(updates or {}),
            ]
        )
        event = ClusterEvent.objects.create(
            cluster=cluster,
            at=now,
            from_state=from_state,
            to_state=to,
            message=message or reason or "",
            actor=actor,
        )
        audit_record(
            action="cluster.state_changed",
            organization=cluster.organization,
            actor=actor,
            actor_kind=actor_kind,
            actor_label=None if actor is not None else "backfill",
            target=cluster,
            detail={"from": from_state, "to": to, "message": event.message},
        )
        signals.cluster_state_changed.send(
            sender=Cluster, cluster=cluster, from_state=from_state, event=event
        )
        if to in EMAILS and not (to == S.RUNNING and from_state != S.PROVISIONING):
            notify(f"cluster_{EMAILS[to]}", cluster_id=cluster.pk)
    logger.info("cluster %s %s: %s -> %s %s", cluster.pk, cluster.name, from_state, to, message)
    return Change(cluster=cluster, from_state=from_state, event=event)


def note(cluster_id: int, message: str, *, actor: User | None = None) -> None:
    ClusterEvent.objects.create(cluster_id=cluster_id, message=message[:500], actor=actor)


def request(
    cluster_id: int,
    action: str,
    *,
    actor: User | None = None,
    actor_kind: str | None = None,
    message: str = "",
) -> Change | None:
    """A customer's (or staff's) stop, start or terminate: the cluster and each of its nodes
    move in one transaction; the cluster's task then asks the backend."""
    with transaction.atomic():
        change = transition(
            cluster_id,
            ACTIONS[action],
            actor=actor,
            actor_kind=actor_kind,
            reason="" if action == "start" else None,
            message=message or f"{action.capitalize()} requested.",
        )
        if change is None:
            return None
        nodes = Instance.objects.filter(cluster_id=cluster_id).exclude(state__in=NODE_FINAL_STATES)
        batch = NODE_REQUESTS[action](
            nodes.values_list("pk", flat=True),
            actor=actor,
            message=f"{action.capitalize()} of the cluster.",
        )
        if batch.refused:
            # A node still coming up (or going down) takes the request on the next settle.
            logger.info("cluster %s: nodes %s: %s later", cluster_id, batch.refused, action)
    return change


NODE_REQUESTS_TARGET = {
    "stop": NodeState.STOPPING,
    "start": NodeState.STARTING,
    "terminate": NodeState.TERMINATING,
}


def _terminate_nodes(nodes: list[Instance], message: str) -> bool:
    """Ask every node that is still alive to terminate; whether any was asked now."""
    alive = [
        node.pk
        for node in nodes
        if node.state not in NODE_FINAL_STATES and node.state != NodeState.TERMINATING
    ]
    if not alive:
        return False
    return bool(node_lifecycle.request_terminate_many(alive, message=message).changes)


def settle(cluster_id: int) -> bool:
    """Move the cluster where its nodes are, and end a cluster that lost a node.

    Returns whether nodes were asked to do something now (the task then calls the backend).
    """
    cluster = Cluster.objects.get(pk=cluster_id)
    nodes = list(Instance.objects.filter(cluster_id=cluster_id).order_by("node_index"))
    if not nodes:
        return False
    states = {node.state for node in nodes}
    broken = [n for n in nodes if n.state in (NodeState.FAILED, NodeState.INTERRUPTED)]

    if cluster.is_final:
        # Whatever is still alive of an ended cluster goes.
        return _terminate_nodes(nodes, f"The cluster {cluster.name} has ended.")

    if cluster.state == S.TERMINATING:
        if states <= NODE_FINAL_STATES:
            transition(cluster_id, S.TERMINATED, message="All nodes are gone.")
            return False
        return _terminate_nodes(nodes, "Termination of the cluster.")

    if broken:
        node = broken[0]
        interrupted = node.state == NodeState.INTERRUPTED
        cause = node.state_reason or ("reclaimed" if interrupted else "failed")
        coming_up = cluster.state in (S.PENDING, S.PROVISIONING)
        with transaction.atomic():
            asked = _terminate_nodes(
                nodes, f"Node {node.name} of the cluster ended; the cluster ends with it."
            )
            if coming_up and not interrupted:
                reason = (
                    f"The cluster did not come up whole: node {node.name}: {cause} "
                    "Its other nodes were terminated; nothing is billed for them from now on."
                )
            else:
                reason = (
                    f"Node {node.name} {'was reclaimed' if interrupted else 'failed'}: {cause} "
                    "A cluster is used whole, so its other nodes were terminated."
                )
            transition(
                cluster_id,
                S.INTERRUPTED if interrupted and not coming_up else S.FAILED,
                reason=reason,
            )
        return asked

    if cluster.state == S.RUNNING and states & {NodeState.STOPPING, NodeState.STOPPED}:
        # Nodes stopped one by one by a rule (a suspension, a budget's hard limit): a cluster
        # with stopped nodes cannot train, so it stops whole.
        with transaction.atomic():
            node_lifecycle.request_stop_many(
                [node.pk for node in nodes if node.state == NodeState.RUNNING],
                message="Some nodes of the cluster were stopped.",
            )
            transition(
                cluster_id,
                S.STOPPING,
                message="Some of its nodes were stopped (by the operator or a budget rule); "
                "the cluster stops whole.",
            )
        return True

    if cluster.state in (S.PENDING, S.PROVISIONING) and states == {NodeState.RUNNING}:
        head = nodes[0]
        transition(
            cluster_id,
            S.RUNNING,
            message=f"All {len(nodes)} nodes are running; the head is at {head.ip}."
            if head.ip
            else f"All {len(nodes)} nodes are running.",
            reason="",
            updates={"launched_at": cluster.launched_at or timezone.now()},
        )
    elif cluster.state == S.STOPPING and states == {NodeState.STOPPED}:
        transition(cluster_id, S.STOPPED, message="All nodes are stopped; the GPUs are released.")
    elif cluster.state == S.STARTING:
        if states == {NodeState.RUNNING}:
            transition(cluster_id, S.RUNNING, message="All nodes are running again.", reason="")
        elif NodeState.STOPPED in states and NodeState.STARTING not in states:
            # The backend could not place every node again: a partial cluster is of no use.
            with transaction.atomic():
                node_lifecycle.request_stop_many(
                    [node.pk for node in nodes if node.state == NodeState.RUNNING],
                    message="The cluster could not start whole.",
                )
                transition(
                    cluster_id,
                    S.STOPPING,
                    reason="Not every node could be started again (no capacity); the cluster "
                    "stays stopped. Try again later.",
                )
            return True
    return False


def note_reclaim(cluster_id: int, *, reclaim_at) -> bool:
    """The operator announced the reclaim of a node, so of the whole cluster, at `reclaim_at`.

    Not a transition: the cluster runs until then. Recorded and e-mailed once (a conditional
    UPDATE claims the notice); returns whether this call did it.
    """
    with transaction.atomic():
        claimed = Cluster.objects.filter(pk=cluster_id, reclaim_notified_at__isnull=True).update(
            reclaim_at=reclaim_at, reclaim_notified_at=timezone.now()
        )
        if not claimed:
            return False
        cluster = Cluster.objects.select_related("organization", "region", "instance_type").get(
            pk=cluster_id
        )
        ClusterEvent.objects.create(
            cluster=cluster,
            message=f"The operator will reclaim this cluster, all {cluster.node_count} nodes, "
            f"at {reclaim_at:%H:%M:%S} UTC.",
        )
        notify("cluster_reclaim_notice", cluster_id=cluster.pk)
        signals.cluster_reclaim_noticed.send(sender=Cluster, cluster=cluster)
    return True
