"""The simulator's vocabulary: its errors, timings and machine records."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

# Transitional state -> the state it reaches when its delay has passed.
NEXT_STATE = {
    "provisioning": "running",
    "starting": "running",
    "rebooting": "running",
    "stopping": "stopped",
    "terminating": "terminated",
}
FINAL_STATES = frozenset({"terminated", "failed", "interrupted"})
# A reclaim interrupts a machine that still holds its GPUs, unless it is going away anyway.
RECLAIMABLE = frozenset({"provisioning", "running", "starting", "rebooting", "stopping"})


class SimulatorError(Exception):
    status = 400
    code = "bad_request"


class BadRequest(SimulatorError):
    pass


class UnknownMachine(SimulatorError):
    status = 404
    code = "not_found"


class UnknownVolume(SimulatorError):
    status = 404
    code = "not_found"


class Conflict(SimulatorError):
    status = 409
    code = "conflict"


class CapacityExhausted(Conflict):
    code = "capacity"

    def __init__(self, message: str, *, available: int | None = None) -> None:
        super().__init__(message)
        # How many of the machines asked for would fit now (a cluster that does not fit whole).
        self.available = available


class WrongState(Conflict):
    code = "invalid_state"


@dataclass
class Timings:
    """Seconds each transition takes, and the notice a reclaim gives."""

    provision: float = 5.0
    start: float = 3.0
    stop: float = 3.0
    reboot: float = 2.0
    terminate: float = 2.0
    # Each delay varies by up to this fraction either way.
    jitter: float = 0.2
    reclaim_notice: float = 120.0

    @classmethod
    def zero(cls, reclaim_notice: float = 120.0) -> Timings:
        return cls(0, 0, 0, 0, 0, 0, reclaim_notice)

    def updated(self, changes: dict[str, Any]) -> Timings:
        known = {f.name for f in fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise BadRequest(f"unknown timing {key!r}; known: {sorted(known)}")
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise BadRequest(f"timing {key!r} must be a number of seconds >= 0")
        return replace(self, **{k: float(v) for k, v in changes.items()})


@dataclass
class MachineRecord:
    id: str
    request_id: str
    name: str
    region: str
    instance_type: str
    gpu_model: str
    gpu_count: int
    image: str
    ssh_keys: list[str]
    preemptible: bool
    state: str
    created_at: float
    changed_at: float
    node: str | None = None
    ip: str | None = None
    detail: str = ""
    transition_at: float | None = None
    reclaim_at: float | None = None
    # A reclaim the portal announced but may still withdraw (a price reclaim's notice): its
    # time is on the machine's metadata; it ends nothing (`reclaim_at` does).
    notice_at: float | None = None
    fails_on_boot: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    # Whose machine it is: it draws on that account's reservations first.
    account: str | None = None
    # Ids of the volumes attached at create, mounted at /data/<volume name>.
    volumes: list[str] = field(default_factory=list)
    # What was written on the machine's own disk (path -> text): gone with the machine.
    files: dict[str, str] = field(default_factory=dict)
    # A node of a cluster: the cluster's request id, its place, private address, hosts file.
    cluster: str | None = None
    node_index: int | None = None
    private_ip: str | None = None
    hosts: str = ""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "request_id": self.request_id,
            "name": self.name,
            "region": self.region,
            "instance_type": self.instance_type,
            "gpu_model": self.gpu_model,
            "gpu_count": self.gpu_count,
            "image": self.image,
            "preemptible": self.preemptible,
            "state": self.state,
            "ip": self.ip,
            "detail": self.detail,
            "reclaim_at": _iso(self.reclaim_at),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.changed_at),
            "cluster": self.cluster,
            "private_ip": self.private_ip,
            "hosts": self.hosts,
            "volumes": list(self.volumes),
        }


@dataclass
class VolumeRecord:
    id: str
    request_id: str
    name: str
    region: str
    size_gb: int
    state: str  # available | deleted
    created_at: float
    changed_at: float
    account: str | None = None
    # What machines wrote under its mount path (path below the mount -> text).
    files: dict[str, str] = field(default_factory=dict)

    @property
    def mount_path(self) -> str:
        return f"/data/{self.name}"

    def public(self, attached_to: list[str]) -> dict[str, Any]:
        return {
            "id": self.id,
            "request_id": self.request_id,
            "name": self.name,
            "region": self.region,
            "size_gb": self.size_gb,
            "state": self.state,
            "attached_to": attached_to,
            "mount_path": self.mount_path,
            "account": self.account,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.changed_at),
        }


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat()
