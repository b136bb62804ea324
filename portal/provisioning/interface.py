"""The one narrow interface between the portal and whatever provisions machines."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, TypeGuard, runtime_checkable

# The naming rule of a cluster's machines, re-exported for the drivers and the portal.
from portal.lib.clusternaming import cluster_hosts as cluster_hosts
from portal.lib.clusternaming import cluster_node_name as cluster_node_name
from portal.lib.clusternaming import cluster_node_request_id as cluster_node_request_id


class MachineState(StrEnum):
    """A machine's state in the backend's vocabulary (not the portal's instance states)."""

    PROVISIONING = "provisioning"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    STARTING = "starting"
    REBOOTING = "rebooting"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


# States a machine never leaves.
FINAL_STATES = frozenset({MachineState.TERMINATED, MachineState.FAILED, MachineState.INTERRUPTED})


@dataclass(frozen=True)
class Machine:
    backend_id: str
    request_id: str
    name: str
    region: str
    instance_type: str
    state: MachineState
    ip: str | None
    preemptible: bool
    # Set when the operator announced a reclaim of this preemptible machine.
    reclaim_at: datetime | None
    detail: str
    created_at: datetime
    # Where to log in, when the backend puts the SSH server on a port other than 22 or wants a
    # particular user (the slurm driver does both); None means "port 22" and "the image's user".
    ssh_port: int | None = None
    ssh_user: str | None = None
    # Whether that user may use sudo (the console's login hint says so); None if not known.
    ssh_sudo: bool | None = None
    # Backend ids of the volumes attached at create (see `VolumeBackend`), mounted at
    # `/data/<volume name>` on the machine.
    volumes: tuple[str, ...] = ()
    # A node of a cluster (`ClusterBackend`): its address on the cluster's private network and
    # the hosts file every node of the cluster has (one "address name" line per node).
    private_ip: str | None = None
    hosts: str = ""


@dataclass(frozen=True)
class Capacity:
    region: str
    instance_type: str
    gpu_model: str
    free_gpus: int
    total_gpus: int
    # How many more machines of this type fit, given how the free GPUs are spread over nodes.
    free_instances: int
    # The fleet of the GPU model in the region as the operator's own work sees it (the same
    # numbers on every instance type of the model): `total_gpus` is the fleet; `internal_gpus`
    # the GPUs the operator's own jobs use now; `customer_gpus` the GPUs the portal's machines
    # hold; `shortfall_gpus` the internal demand that finds no GPU because customers hold them
    # (0: none; the portal answers a shortfall with a reclaim order). `internal_forecast_gpus`
    # is the backend's own forecast of internal demand 15 minutes ahead (None: it cannot say).
    internal_gpus: int = 0
    customer_gpus: int = 0
    shortfall_gpus: int = 0
    internal_forecast_gpus: int | None = None


@runtime_checkable
class ProvisioningBackend(Protocol):
    """What every driver implements. All methods may raise `errors.ProvisioningError`s."""

    def create(
        self,
        *,
        request_id: str,
        instance_type: str,
        region: str,
        image: str,
        ssh_keys: list[str],
        name: str,
        preemptible: bool,
        account: str | None = None,
        volumes: Sequence[str] = (),
    ) -> str:
        """Start provisioning a machine and return its backend id.

        Idempotent on `request_id`: asking again returns the same id and never makes a second
        machine. Raises `CapacityError` when there is no room. `account` names who the machine
        is for (the organization's slug); a driver may map it onto its own accounts (the slurm
        driver charges the job to that organization's Slurm account) or ignore it.
        `volumes` are backend ids of volumes (`VolumeBackend.volume_create`) to mount at
        `/data/<volume name>`; a driver without volumes raises `PermanentError` when given
        any, and every driver raises `NotFound` for an unknown or deleted volume,
        `PermanentError` for one in another region, and `InvalidState` for one another live
        machine holds when the backend does not share volumes (`shared_volumes`).
        """
        ...

    def get(self, backend_id: str) -> Machine:
        """The machine's current view; `NotFound` if the backend has no such machine."""
        ...

    def list(self) -> list[Machine]:
        """Every machine the backend holds for the portal, including recently ended ones."""
        ...

    def start(self, backend_id: str) -> None:
        """Start a stopped machine; a no-op if it is already starting or running."""
        ...

    def stop(self, backend_id: str) -> None:
        """Stop a running machine; a no-op if it is already stopping or stopped."""
        ...

    def reboot(self, backend_id: str) -> None:
        """Reboot a running machine; a no-op while it is already rebooting."""
        ...

    def terminate(self, backend_id: str) -> None:
        """Terminate; a no-op for a machine that has ended or that the backend does not know."""
        ...

    # `builtins.list`: inside the class, `list` names the method above.
    def capacity(self) -> builtins.list[Capacity]:
        """Free GPUs per region and instance type."""
        ...


class VolumeState(StrEnum):
    CREATING = "creating"
    AVAILABLE = "available"
    DELETED = "deleted"


@dataclass(frozen=True)
class Volume:
    """A filesystem of `size_gb` in a region that outlives the machines it is attached to."""

    backend_id: str
    request_id: str
    name: str
    region: str
    size_gb: int
    state: VolumeState
    # Backend ids of the machines that hold it now (created with it and not ended).
    attached_to: tuple[str, ...]
    # Where machines see it, `/data/<name>` (or the nearest the backend allows).
    mount_path: str
    created_at: datetime
    detail: str = ""


@dataclass(frozen=True)
class StorageCapacity:
    region: str
    free_gb: int
    total_gb: int


@runtime_checkable
class VolumeBackend(Protocol):
    """An optional capability: persistent volumes, attached to machines at `create`.

    A volume lives until deleted, whatever happens to the machines it was attached to: what
    they wrote under its mount path is there on the next machine created with it. `account`
    is the organization's slug, as in `create`. `shared_volumes` tells whether a volume may
    be attached to several live machines at once (a network filesystem) or to one only.
    """

    shared_volumes: bool

    def volume_create(
        self, *, request_id: str, region: str, size_gb: int, name: str, account: str | None = None
    ) -> str:
        """Make a volume and return its backend id. Idempotent on `request_id` (asking again
        returns the same id). `CapacityError` when the region's storage has no room;
        `PermanentError` for a size below 1 GB, an unknown region or a bad name."""
        ...

    def volume_get(self, backend_id: str) -> Volume:
        """The volume; `NotFound` for an id the backend does not know (a deleted volume may
        still be reported, in state `deleted`)."""
        ...

    def volume_list(self) -> builtins.list[Volume]:
        """Every volume the backend holds for the portal (deleted ones may be included)."""
        ...

    def volume_resize(self, backend_id: str, size_gb: int) -> None:
        """Grow the volume to `size_gb` (a no-op at its size already; attached or not).
        `InvalidState` for a smaller size or a deleted volume, `CapacityError` without room,
        `NotFound` for an unknown id."""
        ...

    def volume_delete(self, backend_id: str) -> None:
        """Delete the volume and its data. A no-op for a deleted or unknown volume;
        `InvalidState` while a live machine holds it."""
        ...

    def storage_capacity(self) -> builtins.list[StorageCapacity]:
        """Free and total storage per region, in GB."""
        ...


def supports_volumes(backend: object) -> TypeGuard[VolumeBackend]:
    return isinstance(backend, VolumeBackend)


def driver_supports_volumes(driver: type) -> bool:
    """The same told from a driver's class, without building it."""
    return all(
        callable(getattr(driver, method, None))
        for method in ("volume_create", "volume_get", "volume_list", "volume_delete")
    )


def volume_mount_path(name: str) -> str:
    return f"/data/{name}"


@runtime_checkable
class ReservingBackend(Protocol):
    """An optional capability: hold GPUs for one customer over a period (reserved capacity).

    A driver without it still satisfies `ProvisioningBackend`; the portal then keeps its
    reservations to itself (`supports_reservations` tells). While a reservation is in force the
    backend keeps its GPUs from everyone else: they never show as free in `capacity()`, and
    machines created with the reservation's `account` draw on them first.
    """

    def reserve(
        self,
        *,
        reservation_id: str,
        region: str,
        gpu_model: str,
        gpus: int,
        start: datetime,
        end: datetime,
        account: str | None = None,
    ) -> None:
        """Hold `gpus` GPUs of `gpu_model` in `region` from `start` to `end`. Idempotent on
        `reservation_id`; raises `CapacityError` if the fleet cannot hold them."""
        ...

    def release(self, reservation_id: str) -> None:
        """Stop holding them (a cancelled reservation); a no-op for an unknown id."""
        ...


@runtime_checkable
class ReclaimingBackend(Protocol):
    """An optional capability: end a (preemptible) machine at a time the portal chose, after
    the notice the portal gave (a reclaim order, see portal.reclaims).

    Until `at`, the machine runs and its `Machine.reclaim_at` is `at` (the simulator also tells
    the machine's processes, the slurm driver signals the job); at `at` it ends as
    `interrupted` and its GPUs go back to the operator. Called from tasks only.
    """

    def reclaim(self, backend_id: str, at: datetime) -> None:
        """Idempotent: asking again with the same or a later `at` changes nothing (the first,
        earliest time stands); an earlier `at` brings the end forward. A no-op for a machine
        that has ended; `NotFound` for one the backend does not know."""
        ...


def supports_reclaim(backend: object) -> TypeGuard[ReclaimingBackend]:
    return isinstance(backend, ReclaimingBackend)


@runtime_checkable
class NoticingBackend(Protocol):
    """An optional capability: announce a reclaim the portal may still call off (a price
    reclaim, cancelled if the customer raises the max price during the notice).

    The time goes where the machine's processes look for it (the simulator's metadata
    endpoint), as for a reclaim, but nothing is scheduled: the machine ends only if the portal
    then calls `ReclaimingBackend.reclaim`. Called from tasks only.
    """

    def notice(self, backend_id: str, at: datetime | None) -> None:
        """Announce a reclaim at `at`, or withdraw the announcement (`at` None). Idempotent;
        the last call stands; a no-op for a machine that has ended; `NotFound` for one the
        backend does not know."""
        ...


def supports_notice(backend: object) -> TypeGuard[NoticingBackend]:
    return isinstance(backend, NoticingBackend)


def supports_reservations(backend: object) -> TypeGuard[ReservingBackend]:
    return isinstance(backend, ReservingBackend)


@runtime_checkable
class QuotaMirroringBackend(Protocol):
    """An optional capability: the backend enforces an organization's GPU limits itself.

    A driver without it still satisfies `ProvisioningBackend`; the portal's quotas are then the
    only limit (`supports_quota_mirroring` tells). With it, the portal mirrors each
    organization's quota totals into the backend after every change, and the backend holds back
    the machines of an account over its limit (the slurm driver: the organization's Slurm
    account's GrpTRES): such a machine waits in provisioning, its detail saying "waiting for
    capacity (...)", until the limit rises or other machines of the account end.
    `account` is the organization's slug, as in `create(account=...)`; GPU models are the
    catalog's codes (`h100`).
    """

    def set_account_limits(self, account: str, limits: Mapping[str, int | None]) -> None:
        """Make `limits` (`{gpu_model: gpus}` over every region) the account's whole set of
        GPU limits: a model not given, or given None, has no limit afterwards; a model the
        backend does not know is left out. Idempotent, and the last call wins whole (no
        read-modify-write). Makes the account if needed. `PermanentError` for a negative limit
        or an account name the backend cannot take."""
        ...

    def account_limits(self, account: str) -> dict[str, int]:
        """The limits the backend holds now, `{gpu_model: gpus}` (empty for an unknown
        account or one without limits)."""
        ...


def supports_quota_mirroring(backend: object) -> TypeGuard[QuotaMirroringBackend]:
    return isinstance(backend, QuotaMirroringBackend)


def driver_supports_quota_mirroring(driver: type) -> bool:
    """The same told from a driver's class (`get_backend_class()`), without building it."""
    return issubclass(driver, QuotaMirroringBackend)


@runtime_checkable
class ClusterBackend(Protocol):
    """An optional capability: N machines of one type placed together, all or nothing.

    A driver without it still satisfies `ProvisioningBackend`; the portal then offers no
    clusters (`supports_clusters` tells). The machines of a cluster are ordinary machines
    afterwards (`get`, `list`, `stop`, `start`, `terminate` each), named `<name>-0 …
    <name>-(N-1)` with the request ids `cluster_node_request_id(request_id, i)`; node 0 is the
    head and has the public address (`ip`); every node has a private address on the cluster's
    network (`private_ip`), the SSH keys, the volumes and a hosts file listing all nodes
    (`hosts`, the same on every node).
    """

    def cluster_create(
        self,
        *,
        request_id: str,
        instance_type: str,
        region: str,
        image: str,
        nodes: int,
        ssh_keys: builtins.list[str],
        volumes: builtins.list[str],
        preemptible: bool,
        name: str,
        account: str | None = None,
    ) -> builtins.list[Machine]:
        """Place `nodes` machines together (one fabric) and return them in node order.

        Idempotent on `request_id`: asking again returns the same machines. Atomic: if the
        backend cannot place all of them together now, it creates none and raises
        `CapacityError` whose `available` says how many would fit together now.
        `PermanentError` for fewer than 2 nodes or a type the region lacks.
        """
        ...

    def cluster_machines(self, request_id: str) -> builtins.list[Machine]:
        """The machines of the cluster asked for with `request_id`, in node order, each as
        `get` would show it: one read for every node, however many. A node the backend no
        longer has is left out; [] for a request id it does not know."""
        ...


def supports_clusters(backend: object) -> TypeGuard[ClusterBackend]:
    return isinstance(backend, ClusterBackend)


def driver_supports_clusters(driver: type) -> bool:
    return issubclass(driver, ClusterBackend)
