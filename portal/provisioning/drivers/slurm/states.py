"""A Slurm job read as a machine: its state and detail, address, SSH port and user.

PENDING is provisioning (starting after a stop, stopped while held), with "waiting for capacity
(<reason>)" when Slurm says why (AssocGrpGRES: the organization's Slurm account is at its GPU
limit); RUNNING is provisioning until the job reported its port for this run, then running (with
`reclaim_at` when a preemption's grace time runs); PREEMPTED is interrupted; CANCELLED is
terminated; FAILED, NODE_FAIL, TIMEOUT, OUT_OF_MEMORY and a job that ended by itself are failed,
with Slurm's reason in `detail`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ...errors import InvalidResponse
from ...interface import (
    FINAL_STATES,
    Machine,
    MachineState,
    cluster_hosts,
    cluster_node_name,
    cluster_node_request_id,
)
from .meta import Meta

# Slurm job states in which the job still holds, or waits for, its GPUs.
ACTIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"})
FAILED_STATES = frozenset(
    {"FAILED", "NODE_FAIL", "BOOT_FAIL", "TIMEOUT", "OUT_OF_MEMORY", "DEADLINE", "COMPLETED"}
)
HELD_REASONS = frozenset({"JobHeldUser", "JobHeldAdmin"})
NO_REASON = frozenset({"None", "", "BeginTime"})


def job_state(job: dict[str, Any], meta: Meta | None) -> tuple[MachineState, str]:
    """The machine state and detail of a Slurm job."""
    state = str(job.get("job_state") or "")
    reason = str(job.get("state_reason") or "")
    restarts = int(job.get("restart_cnt") or 0)
    describe = str(job.get("state_description") or "")
    waiting = MachineState.STARTING if restarts else MachineState.PROVISIONING
    if state == "PENDING":
        if reason in HELD_REASONS:
            return MachineState.STOPPED, ""
        if reason in NO_REASON:
            return waiting, ""
        return waiting, f"waiting for capacity ({reason})"
    if state in ("CONFIGURING", "REQUEUED", "REQUEUE_FED"):
        return waiting, ""
    if state == "RUNNING":
        if meta and meta.port and (meta.run or 0) == restarts:
            return MachineState.RUNNING, ""
        return waiting, "the SSH server is starting"
    if meta and meta.reclaimed and state in ("COMPLETING", "CANCELLED", "SIGNALING"):
        return MachineState.INTERRUPTED, "reclaimed by the operator"
    if state in ("COMPLETING", "REQUEUE_HOLD", "SIGNALING", "STAGE_OUT"):
        if reason in HELD_REASONS or "held" in describe or state == "REQUEUE_HOLD":
            return MachineState.STOPPING, ""
        if job.get("preempt_time"):
            return MachineState.INTERRUPTED, "preempted by the operator's work"
        return MachineState.TERMINATING, ""
    if state == "SUSPENDED":
        return MachineState.STOPPED, "suspended by the operator"
    if state == "PREEMPTED":
        return MachineState.INTERRUPTED, "preempted by the operator's work"
    if state == "CANCELLED":
        return MachineState.TERMINATED, ""
    if state in FAILED_STATES:
        why = (meta.error if meta else "") or describe or (reason if reason != "None" else "")
        exit_code = job.get("exit_code")
        text = f"Slurm job {state.lower().replace('_', ' ')}"
        if state == "COMPLETED":
            text = "the instance's Slurm job ended by itself"
        if why:
            text += f": {why}"
        if exit_code not in (None, 0):
            text += f" (exit code {exit_code})"
        return MachineState.FAILED, text
    return MachineState.FAILED, f"unknown Slurm job state {state!r}"


def machine_state(job: dict[str, Any]) -> MachineState:
    return job_state(job, Meta.decode(job.get("comment")))[0]


def job_machine(job: dict[str, Any], addresses: dict[str, str], default_user: str) -> Machine:
    """The machine of one of the driver's jobs; `addresses` maps node names to addresses."""
    meta = Meta.decode(job.get("comment"))
    if meta is None:
        raise InvalidResponse(f"Slurm job {job.get('job_id')} has no portal comment")
    state, detail = job_state(job, meta)
    node = job.get("batch_host") or job.get("nodes") or ""
    ip = addresses.get(node) if node and state not in FINAL_STATES else None
    port = meta.port if state == MachineState.RUNNING else None
    if port and ip:
        detail = detail or f"SSH on {ip} port {port}"
    reclaim_at = None
    if meta.reclaim and state not in (MachineState.TERMINATED, MachineState.FAILED):
        reclaim_at = timestamp(meta.reclaim)  # the portal's reclaim: the second it ends
    elif state in (MachineState.RUNNING, MachineState.INTERRUPTED) and job.get("preempt_time"):
        reclaim_at = timestamp(job.get("end_time")) or timestamp(job.get("preempt_time"))
    return Machine(
        backend_id=str(job["job_id"]),
        request_id=meta.request_id,
        name=meta.name,
        region=meta.region,
        instance_type=meta.instance_type,
        state=state,
        ip=ip if state in (MachineState.RUNNING, MachineState.REBOOTING) else None,
        preemptible=meta.preemptible,
        reclaim_at=reclaim_at,
        detail=detail,
        created_at=timestamp(meta.created)
        or timestamp(job.get("submit_time"))
        or datetime.now(UTC),
        ssh_port=port,
        ssh_user=job.get("user_name") or default_user,
        ssh_sudo=False,  # a batch job runs as the cluster's Unix user, without root
        volumes=meta.volumes,
    )


def node_id(job_id: int | str, index: int) -> str:
    """The backend id of node `index` of a cluster's job: `<job id>.<index>`."""
    return f"{job_id}.{index}"


def split_id(backend_id: str) -> tuple[str, int | None]:
    """`("123", 1)` for a cluster's node `123.1`, `("123", None)` for an instance's job."""
    job_id, _, index = str(backend_id).partition(".")
    return job_id, int(index) if index.isdigit() else None


def job_machines(
    job: dict[str, Any], addresses: dict[str, str], default_user: str
) -> list[Machine]:
    """The machines of a job: one for an instance's, one per node for a cluster's."""
    meta = Meta.decode(job.get("comment"))
    if meta is None or not meta.nodes:
        return [job_machine(job, addresses, default_user)]
    return [cluster_node_machine(job, i, addresses, default_user) for i in range(meta.nodes)]


def cluster_node_machine(
    job: dict[str, Any], index: int, addresses: dict[str, str], default_user: str
) -> Machine:
    """Node `index` of a cluster's job: the job's state, its own address, port and name."""
    whole = job_machine(job, addresses, default_user)
    meta = Meta.decode(job.get("comment"))
    assert meta is not None  # job_machine refused a job without one
    if not 0 <= index < meta.nodes:
        raise InvalidResponse(f"Slurm job {job.get('job_id')} has no node {index}")
    running = whole.state in (MachineState.RUNNING, MachineState.REBOOTING)
    reported = running and len(meta.hosts) == meta.nodes and len(meta.ports) == meta.nodes
    names = [cluster_node_name(meta.name, i) for i in range(meta.nodes)]
    private = addresses.get(meta.hosts[index], meta.hosts[index]) if reported else None
    hosts = (
        cluster_hosts([(addresses.get(h, h), n) for h, n in zip(meta.hosts, names, strict=True)])
        if reported
        else ""
    )
    port = meta.ports[index] if reported else None
    return replace(
        whole,
        backend_id=node_id(job["job_id"], index),
        request_id=cluster_node_request_id(meta.request_id, index),
        name=names[index],
        # The head has the public address; every node is reached on its private one.
        ip=whole.ip if index == 0 else None,
        private_ip=private,
        hosts=hosts,
        ssh_port=port,
        detail=f"SSH on {private} port {port}" if reported else whole.detail,
    )


def timestamp(value: Any) -> datetime | None:
    """A Slurm time (epoch seconds; 0 and huge values mean none) as an aware datetime."""
    if isinstance(value, int) and 0 < value < 2**31 * 2:
        return datetime.fromtimestamp(value, UTC)
    return None
