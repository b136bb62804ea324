"""How a cluster's machines are named and found, shared by the backend drivers, the simulator
(a program of its own) and the portal: one rule, one place."""

from __future__ import annotations

import uuid


def cluster_node_request_id(request_id: str, index: int) -> str:
    """The request id of node `index` of the cluster asked for with `request_id`.

    Every driver gives a cluster's machines these request ids, so that the portal knows each
    node's id before the backend answers (and reconciliation adopts a node the way it adopts
    an instance's machine). A UUID derived from `request_id` (itself a UUID in the portal).
    """
    try:
        namespace = uuid.UUID(request_id)
    except ValueError:
        namespace = uuid.uuid5(uuid.NAMESPACE_URL, request_id)
    return str(uuid.uuid5(namespace, f"node-{index}"))


def cluster_node_name(name: str, index: int) -> str:
    """`<cluster>-<index>`: node 0 is the head."""
    return f"{name}-{index}"


def cluster_hosts(nodes: list[tuple[str, str]]) -> str:
    """The hosts file of a cluster from its nodes' (private address, name), in node order."""
    return "".join(f"{address} {name}\n" for address, name in nodes)
