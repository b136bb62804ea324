"""Instance types as Slurm sees them, and free capacity from slurmrestd's nodes.

An instance type `gpu_<N>x_<model>` (or one listed in SLURM_INSTANCE_TYPES) asks for N GPUs of
one model on one node (gres `gpu:<model>:<N>`). Free capacity is counted per partition (region)
and GPU model: the GPUs of up nodes, minus allocated ones, minus what the driver's pending jobs
will take (placed first fit, largest first), in whole instances per node.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidResponse, PermanentError
from ...interface import Capacity

INSTANCE_TYPE_RE = re.compile(r"^gpu_(\d+)x_([a-z0-9]+)$")
GRES_RE = re.compile(r"^gpu:([A-Za-z0-9_-]+):(\d+)")
DEFAULT_COUNTS = (1, 2, 4, 8)
BAD_NODE_STATES = ("DOWN", "DRAIN", "FAIL", "NOT_RESPONDING", "INVAL", "UNKNOWN", "FUTURE")


@dataclass(frozen=True)
class InstanceShape:
    """What an instance type asks of Slurm."""

    gpu_model: str
    gpus: int


def parse_shape(value: Any) -> InstanceShape:
    """An entry of SLURM_INSTANCE_TYPES: a shape, `{"gpu_model", "gpus"}` or `(model, gpus)`."""
    if isinstance(value, InstanceShape):
        return value
    if isinstance(value, dict):
        return InstanceShape(gpu_model=str(value["gpu_model"]), gpus=int(value["gpus"]))
    model, gpus = value
    return InstanceShape(gpu_model=str(model), gpus=int(gpus))


def shape_of(instance_type: str, known: Mapping[str, InstanceShape]) -> InstanceShape:
    """The shape of an instance type: listed in `known`, or parsed from `gpu_<N>x_<model>`."""
    if instance_type in known:
        return known[instance_type]
    match = INSTANCE_TYPE_RE.match(instance_type)
    if not match:
        raise PermanentError(
            f"the slurm driver does not know instance type {instance_type!r} "
            "(name it gpu_<count>x_<model> or list it in SLURM_INSTANCE_TYPES)"
        )
    return InstanceShape(gpu_model=match.group(2), gpus=int(match.group(1)))


@dataclass(slots=True)
class Node:
    """A GPU node as slurmrestd describes it (`parse`: None for a node without GPUs)."""

    name: str
    address: str
    model: str  # the GPU model, as in the node's gres
    gpus: int
    used: int  # GPUs allocated now
    partitions: list[str]
    up: bool

    @classmethod
    def parse(cls, data: Any) -> Node | None:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return None
        match = GRES_RE.match(data.get("gres") or "")
        if not match:
            return None  # no GPUs: not for sale
        used = 0
        for part in (data.get("gres_used") or "").split(","):
            used_match = GRES_RE.match(part)
            if used_match:
                used += int(used_match.group(2))
        states = {str(data.get("state", "")).upper()} | {
            str(flag).upper() for flag in data.get("state_flags") or []
        }
        return cls(
            name=data["name"],
            address=data.get("address") or data.get("hostname") or data["name"],
            model=match.group(1),
            gpus=int(match.group(2)),
            used=used,
            partitions=list(data.get("partitions") or []),
            up=not any(bad in state for state in states for bad in BAD_NODE_STATES),
        )


def parse_nodes(answer: Any, partition: str | None = None) -> dict[str, Node]:
    """The GPU nodes of slurmrestd's `GET nodes` answer (of one partition, if given)."""
    raw = answer.get("nodes") if isinstance(answer, dict) else None
    if not isinstance(raw, list):
        raise InvalidResponse("slurmrestd answered nodes without a list 'nodes'")
    nodes = {}
    for item in raw:
        node = Node.parse(item)
        if node and (partition is None or partition in node.partitions):
            nodes[node.name] = node
    return nodes


def free_after(nodes: Mapping[str, Node], pending: Iterable[int]) -> dict[str, int]:
    """Free GPUs per node once our pending jobs are placed (first fit, largest first)."""
    free = {n.name: (max(0, n.gpus - n.used) if n.up else 0) for n in nodes.values()}
    for gpus in sorted(pending, reverse=True):
        for name in sorted(free, key=lambda k: free[k]):
            if free[name] >= gpus:
                free[name] -= gpus
                break
    return free


def free_instances(nodes: Mapping[str, Node], shape: InstanceShape, pending: Iterable[int]) -> int:
    """How many more instances of `shape` fit on `nodes` once the pending jobs are placed."""
    free = free_after(nodes, pending)
    return sum(free[n.name] // shape.gpus for n in nodes.values() if n.model == shape.gpu_model)


def shapes_for(
    nodes: Mapping[str, Node], known: Mapping[str, InstanceShape]
) -> dict[str, InstanceShape]:
    """The instance types that fit one of `nodes`: those of `known`, or else
    `gpu_{1,2,4,8}x_<model>` for every GPU model of the nodes."""
    models = {n.model for n in nodes.values()}
    largest = {m: max(n.gpus for n in nodes.values() if n.model == m) for m in models}
    if known:
        return {
            code: shape
            for code, shape in known.items()
            if shape.gpu_model in models and shape.gpus <= largest[shape.gpu_model]
        }
    return {
        f"gpu_{count}x_{model}": InstanceShape(model, count)
        for model in models
        for count in DEFAULT_COUNTS
        if count <= largest[model]
    }


JOB_GPUS_RE = re.compile(r"gpu:([A-Za-z0-9_-]+)[=:](\d+)")


@dataclass
class Demand:
    """GPUs per (partition, GPU model): the operator's own jobs running (internal) and
    pending for GPUs (the shortfall), and the portal's jobs running (customer)."""

    internal: dict[tuple[str, str], int]
    shortfall: dict[tuple[str, str], int]
    customer: dict[tuple[str, str], int]


def job_gpus(job: dict[str, Any]) -> tuple[str, int] | None:
    """(GPU model, GPUs) a job holds or asks for, from its TRES strings; None without GPUs."""
    for key in ("tres_alloc_str", "tres_req_str", "tres_per_node", "tres_per_job"):
        match = JOB_GPUS_RE.search(str(job.get(key) or ""))
        if match:
            gpus = int(match.group(2))
            nodes = job.get("node_count")
            if key == "tres_per_node" and isinstance(nodes, dict):
                nodes = nodes.get("number")
            if key == "tres_per_node" and isinstance(nodes, int) and nodes > 1:
                gpus *= nodes
            return match.group(1), gpus
    return None


def demand_of(
    jobs: Iterable[dict[str, Any]], *, internal_qos: Iterable[str], is_ours: Any
) -> Demand:
    """The operator's jobs are those in an internal QOS; pending ones count as a shortfall
    when they wait for GPUs (Resources, Priority), not when held or over a limit."""
    qos = set(internal_qos)
    demand = Demand(internal={}, shortfall={}, customer={})
    for job in jobs:
        state = job.get("job_state")
        gpus = job_gpus(job)
        if gpus is None:
            continue
        key = (str(job.get("partition") or ""), gpus[0])
        if is_ours(job):
            if state == "RUNNING":
                demand.customer[key] = demand.customer.get(key, 0) + gpus[1]
            continue
        if job.get("qos") not in qos:
            continue
        if state == "RUNNING":
            demand.internal[key] = demand.internal.get(key, 0) + gpus[1]
        elif state == "PENDING" and (job.get("state_reason") or "") in (
            "Resources",
            "Priority",
            "None",
            "",
        ):
            demand.shortfall[key] = demand.shortfall.get(key, 0) + gpus[1]
    return demand


def capacities(
    nodes: Mapping[str, Node],
    pending: Mapping[str, list[int]],
    known: Mapping[str, InstanceShape],
    partitions: Mapping[str, str],
    demand: Demand | None = None,
) -> list[Capacity]:
    """Free GPUs per region and instance type. `pending`: GPUs of our pending jobs per
    partition; `partitions`: the partition of each region (a region is its partition else);
    `demand`: the operator's own jobs and ours (internal, shortfall, customer GPUs)."""
    demand = demand or Demand(internal={}, shortfall={}, customer={})
    result = []
    by_partition: dict[str, dict[str, Node]] = {}
    for node in nodes.values():
        for partition in node.partitions:
            by_partition.setdefault(partition, {})[node.name] = node
    regions = {partition: region for region, partition in partitions.items()}
    for partition, members in sorted(by_partition.items()):
        free = free_after(members, pending.get(partition, []))
        for code, shape in sorted(shapes_for(members, known).items()):
            fitting = [n for n in members.values() if n.model == shape.gpu_model]
            result.append(
                Capacity(
                    region=regions.get(partition, partition),
                    instance_type=code,
                    gpu_model=shape.gpu_model,
                    free_gpus=sum(free[n.name] for n in fitting),
                    total_gpus=sum(n.gpus for n in fitting),
                    free_instances=sum(free[n.name] // shape.gpus for n in fitting),
                    internal_gpus=demand.internal.get((partition, shape.gpu_model), 0),
                    customer_gpus=demand.customer.get((partition, shape.gpu_model), 0),
                    shortfall_gpus=demand.shortfall.get((partition, shape.gpu_model), 0),
                )
            )
    return result
