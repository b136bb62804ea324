"""Client library of the backend provisioning API.

It knows nothing of the portal's models: the portal depends on it, never the other way round.
`get_backend()` is the one place that reads Django settings, lazily:

- `PROVISIONING_BACKEND`: a name in `DRIVERS` (default "simulator") or a dotted class path.
- `PROVISIONING_DRIVERS`: extra `{name: "dotted.path.Class"}` entries for `DRIVERS`.
- the driver's own settings, read by its `from_settings()`; the simulator driver reads
  `SIMULATOR_URL`, `PROVISIONING_TOKEN`, `PROVISIONING_TIMEOUT` (seconds, or a (connect, read)
  pair), `PROVISIONING_RETRIES` (retries after the first attempt) and `PROVISIONING_BACKOFF`
  (`transport.transport_options`, the same for every HTTP driver).

The portal imports this package only (never `drivers.*`): `get_backend()`, the interface's
types and errors, and the checks of the optional capabilities (`supports_reservations`,
`supports_clusters`, `supports_quota_mirroring`, `supports_volumes`, or
`driver_supports_quota_mirroring` / `driver_supports_volumes` / `driver_supports_clusters` on the
driver's class from `get_backend_class()`, to tell without
building a driver).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import (
    AuthenticationError,
    CapacityError,
    InvalidResponse,
    InvalidState,
    NotFound,
    PermanentError,
    ProvisioningError,
    TransientError,
)
from .interface import (
    FINAL_STATES,
    Capacity,
    ClusterBackend,
    Machine,
    MachineState,
    NoticingBackend,
    ProvisioningBackend,
    QuotaMirroringBackend,
    ReclaimingBackend,
    ReservingBackend,
    StorageCapacity,
    Volume,
    VolumeBackend,
    VolumeState,
    cluster_hosts,
    cluster_node_name,
    cluster_node_request_id,
    driver_supports_clusters,
    driver_supports_quota_mirroring,
    driver_supports_volumes,
    supports_clusters,
    supports_notice,
    supports_quota_mirroring,
    supports_reclaim,
    supports_reservations,
    supports_volumes,
    volume_mount_path,
)

DRIVERS: dict[str, str] = {
    "simulator": "portal.provisioning.drivers.simulator.SimulatorBackend",
    "slurm": "portal.provisioning.drivers.slurm.SlurmBackend",
}

__all__ = [
    "DRIVERS",
    "FINAL_STATES",
    "AuthenticationError",
    "Capacity",
    "CapacityError",
    "ClusterBackend",
    "InvalidResponse",
    "InvalidState",
    "Machine",
    "MachineState",
    "NoticingBackend",
    "NotFound",
    "PermanentError",
    "ProvisioningBackend",
    "ProvisioningError",
    "QuotaMirroringBackend",
    "ReclaimingBackend",
    "ReservingBackend",
    "StorageCapacity",
    "TransientError",
    "Volume",
    "VolumeBackend",
    "VolumeState",
    "cluster_hosts",
    "cluster_node_name",
    "cluster_node_request_id",
    "driver_supports_clusters",
    "driver_supports_quota_mirroring",
    "driver_supports_volumes",
    "get_backend",
    "get_backend_class",
    "load_driver",
    "supports_clusters",
    "supports_notice",
    "supports_quota_mirroring",
    "supports_reclaim",
    "supports_reservations",
    "supports_volumes",
    "volume_mount_path",
]


def load_driver(name: str, extra: dict[str, str] | None = None) -> Any:
    """The driver class registered as `name` (or at the dotted path `name`)."""
    drivers = {**DRIVERS, **(extra or {})}
    path = drivers.get(name, name)
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise ValueError(f"unknown provisioning backend {name!r}; known: {sorted(drivers)}")
    try:
        return getattr(import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load provisioning backend {name!r} from {path!r}") from exc


def _settings(settings: Any) -> Any:
    """`settings`, or Django's, imported only now: this package does not need Django."""
    if settings is not None:
        return settings
    from django.conf import settings as django_settings

    return django_settings


def get_backend_class(settings: Any = None) -> Any:
    """The configured driver's class, not built (settings as for `get_backend`); ValueError
    when `PROVISIONING_BACKEND` names no driver."""
    settings = _settings(settings)
    name = getattr(settings, "PROVISIONING_BACKEND", "simulator")
    return load_driver(name, getattr(settings, "PROVISIONING_DRIVERS", None))


def get_backend(settings: Any = None) -> ProvisioningBackend:
    """The configured backend, built from Django settings (or any object with those attributes)."""
    settings = _settings(settings)
    backend: ProvisioningBackend = get_backend_class(settings).from_settings(settings)
    return backend
