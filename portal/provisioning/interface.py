"""The one narrow interface between the portal and whatever provisions machines."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, TypeGuard, runtime_checkable


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


@dataclass(frozen=True)
class Capacity:
    region: str
    instance_type: str
    gpu_model: str
    free_gpus: int
    total_gpus: int
    # How many more machines of this type fit, given how the free GPUs are spread over nodes.
    free_instances: int


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
    ) -> str:
        """Start provisioning a machine and return its backend id.

        Idempotent on `request_id`: asking again returns the same id and never makes a second
        machine. Raises `CapacityError` when there is no room. `account` names who the machine
        is for (the organization's slug); a driver may map it onto its own accounts (the slurm
        driver charges the job to that organization's Slurm account) or ignore it.
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
