"""HTTP driver of the project's own simulator (`python -m portal.simulator`)."""

from __future__ import annotations

import builtins
import contextlib
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import requests

from ..errors import (
    AuthenticationError,
    CapacityError,
    InvalidResponse,
    InvalidState,
    NotFound,
    PermanentError,
    ProvisioningError,
)
from ..interface import (
    Capacity,
    Machine,
    MachineState,
    StorageCapacity,
    Volume,
    VolumeState,
)
from ..transport import (
    HttpDriver,
    HttpTransport,
    Timeout,
    json_body,
    status_error,
    transport_options,
)

T = TypeVar("T")


class SimulatorBackend(HttpDriver):
    """Talks to the simulator's `/v1` API through the shared `HttpTransport`.

    Every call has a time-out (a number, or a `(connect, read)` pair in seconds) and is retried
    `retries` times on transient errors, waiting `backoff * 2**n` seconds between attempts.
    Retrying is safe because every endpoint is idempotent (create on its request id).

    Volumes (the optional `VolumeBackend` capability) are the simulator's network filesystem:
    `shared_volumes` (setting `SIMULATOR_SHARED_VOLUMES`, default True) says a volume may be
    attached to several live machines, as the simulator does unless told otherwise by
    `/control/storage`.

    `concurrent_creates` (setting `SIMULATOR_CONCURRENT_CREATES`, default 8): how many
    `create` calls a provisioning run may make at once. The simulator answers a change once it
    is written and fsynced, and changes made at once share one write.
    """

    shared_volumes: bool = True
    concurrent_creates: int = 1

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: Timeout = 10.0,
        retries: int = 2,
        backoff: float = 0.5,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        shared_volumes: bool = True,
        concurrent_creates: int = 1,
    ) -> None:
        self.shared_volumes = shared_volumes
        self.concurrent_creates = max(1, concurrent_creates)
        self.transport = HttpTransport(
            base_url,
            service="the simulator",
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            session=session,
            sleep=sleep,
            headers={"Authorization": f"Bearer {token}"},
        )

    @classmethod
    def from_settings(cls, settings: Any) -> SimulatorBackend:
        return cls(
            getattr(settings, "SIMULATOR_URL", "http://127.0.0.1:8070"),
            getattr(settings, "PROVISIONING_TOKEN", ""),
            shared_volumes=bool(getattr(settings, "SIMULATOR_SHARED_VOLUMES", True)),
            concurrent_creates=int(getattr(settings, "SIMULATOR_CONCURRENT_CREATES", 8)),
            **transport_options(settings),
        )

    # The interface

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
        # The account (the organization's slug) lets the machine draw on its reservations.
        payload = {
            "request_id": request_id,
            "instance_type": instance_type,
            "region": region,
            "image": image,
            "ssh_keys": list(ssh_keys),
            "name": name,
            "preemptible": preemptible,
        }
        if account is not None:
            payload["account"] = account
        if volumes:
            payload["volumes"] = list(volumes)
        return self._call("POST", "/v1/machines", parse_machine, payload).backend_id

    def get(self, backend_id: str) -> Machine:
        return self._call("GET", _machine_path(backend_id), parse_machine)

    # Clusters (the optional `ClusterBackend` capability)

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
        payload: dict[str, Any] = {
            "request_id": request_id,
            "instance_type": instance_type,
            "region": region,
            "image": image,
            "nodes": nodes,
            "ssh_keys": list(ssh_keys),
            "volumes": list(volumes),
            "preemptible": preemptible,
            "name": name,
        }
        if account is not None:
            payload["account"] = account
        return self._call("POST", "/v1/clusters", parse_machines, payload)

    def cluster_machines(self, request_id: str) -> builtins.list[Machine]:
        return self._call("GET", f"/v1/clusters/{quote(request_id, safe='')}", parse_machines)

    def list(self) -> list[Machine]:
        return self._call("GET", "/v1/machines", parse_machines)

    def start(self, backend_id: str) -> None:
        self._action(backend_id, "start")

    def stop(self, backend_id: str) -> None:
        self._action(backend_id, "stop")

    def reboot(self, backend_id: str) -> None:
        self._action(backend_id, "reboot")

    def terminate(self, backend_id: str) -> None:
        with contextlib.suppress(NotFound):
            self._action(backend_id, "terminate")

    def capacity(self) -> builtins.list[Capacity]:
        return self._call("GET", "/v1/capacity", parse_capacities)

    # Reclaims (the optional `ReclaimingBackend` capability)

    def reclaim(self, backend_id: str, at: datetime) -> None:
        self._call(
            "POST", f"{_machine_path(backend_id)}/reclaim", parse_machine, {"at": at.isoformat()}
        )

    # Reclaims announced that may be called off (the optional `NoticingBackend` capability)

    def notice(self, backend_id: str, at: datetime | None) -> None:
        self._call(
            "POST",
            f"{_machine_path(backend_id)}/notice",
            parse_machine,
            {"at": at.isoformat() if at is not None else None},
        )

    # Volumes (the optional `VolumeBackend` capability)

    def volume_create(
        self, *, request_id: str, region: str, size_gb: int, name: str, account: str | None = None
    ) -> str:
        payload: dict[str, Any] = {
            "request_id": request_id,
            "region": region,
            "size_gb": size_gb,
            "name": name,
        }
        if account is not None:
            payload["account"] = account
        return self._call("POST", "/v1/volumes", parse_volume, payload).backend_id

    def volume_get(self, backend_id: str) -> Volume:
        return self._call("GET", _volume_path(backend_id), parse_volume)

    def volume_list(self) -> builtins.list[Volume]:
        return self._call("GET", "/v1/volumes", parse_volumes)

    def volume_resize(self, backend_id: str, size_gb: int) -> None:
        self._call("POST", f"{_volume_path(backend_id)}/resize", parse_volume, {"size_gb": size_gb})

    def volume_delete(self, backend_id: str) -> None:
        self._call("DELETE", _volume_path(backend_id), _ignore)

    def storage_capacity(self) -> builtins.list[StorageCapacity]:
        return self._call("GET", "/v1/storage", parse_storage)

    # Reserved capacity (the optional `ReservingBackend` capability)

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
        payload = {
            "region": region,
            "gpu_model": gpu_model,
            "gpus": gpus,
            "start": start.timestamp(),
            "end": end.timestamp(),
            "account": account,
        }
        self._call("PUT", _reservation_path(reservation_id), _ignore, payload)

    def release(self, reservation_id: str) -> None:
        self._call("DELETE", _reservation_path(reservation_id), _ignore)

    # Transport

    def _action(self, backend_id: str, action: str) -> None:
        self._call("POST", f"{_machine_path(backend_id)}/{action}", parse_machine)

    def _call(
        self,
        method: str,
        path: str,
        parse: Callable[[Any], T],
        payload: dict[str, Any] | None = None,
    ) -> T:
        """One API call, retried on transient errors, garbage answers included."""

        def read(response: requests.Response, what: str) -> T:
            error = _error(what, response)
            if error is not None:
                raise error
            return parse(json_body(response, what))

        return self.transport.call(
            method, path, read, what=f"simulator {method} {path}", json=payload
        )


def _reservation_path(reservation_id: str) -> str:
    return f"/v1/reservations/{quote(reservation_id, safe='')}"


def _ignore(body: Any) -> None:
    return None


def _volume_path(backend_id: str) -> str:
    return f"/v1/volumes/{quote(backend_id, safe='')}"


def _machine_path(backend_id: str) -> str:
    return f"/v1/machines/{quote(backend_id, safe='')}"


def _error_body(response: requests.Response) -> tuple[str, str, int | None]:
    """The simulator's error code, message and (capacity errors of clusters) how many fit."""
    try:
        error = response.json()["error"]
        available = error.get("available")
        return (
            str(error.get("code", "")),
            str(error.get("message", "")),
            available if isinstance(available, int) and not isinstance(available, bool) else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return "", response.text[:200], None


def _error(what: str, response: requests.Response) -> ProvisioningError | None:
    """The transport's error for the status, sharpened by the simulator's error codes."""
    if response.status_code < 400:
        return None
    code, message, available = _error_body(response)
    error = status_error(what, response.status_code, message)
    if not isinstance(error, PermanentError):
        return error
    text = str(error)
    if isinstance(error, AuthenticationError):
        return AuthenticationError(f"{text} (check PROVISIONING_TOKEN)")
    if response.status_code == 404:
        return NotFound(text)
    if code == "capacity":
        return CapacityError(text, available=available)
    if code == "invalid_state":
        return InvalidState(text)
    return error


# Validation of answers: anything unexpected is an InvalidResponse, never a KeyError.


def _list_field(body: Any, key: str) -> list[Any]:
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, list):
        raise InvalidResponse(f"answer has no list {key!r}")
    return value


def _field(data: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in data:
        raise InvalidResponse(f"answer lacks field {key!r}")
    value = data[key]
    # bool is an int subclass; never accept it where a count is expected.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise InvalidResponse(f"field {key!r} has unexpected value {value!r}")
    return value


def _parse_datetime(key: str, raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidResponse(f"field {key!r} is not a date: {raw!r}") from exc
    if value.tzinfo is None:
        raise InvalidResponse(f"field {key!r} has no time zone: {raw!r}")
    return value


def _datetime(data: dict[str, Any], key: str) -> datetime:
    return _parse_datetime(key, _field(data, key, str))


def _optional_datetime(data: dict[str, Any], key: str) -> datetime | None:
    raw = _field(data, key, (str, type(None)))
    return None if raw is None else _parse_datetime(key, raw)


def _optional_text(data: dict[str, Any], key: str) -> str | None:
    """A field only some machines have (a cluster's nodes): absent or null is None."""
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidResponse(f"field {key!r} has unexpected value {value!r}")
    return value


def parse_machine(data: Any) -> Machine:
    if not isinstance(data, dict):
        raise InvalidResponse("machine is not an object")
    state = _field(data, "state", str)
    try:
        state = MachineState(state)
    except ValueError as exc:
        raise InvalidResponse(f"unknown machine state {state!r}") from exc
    return Machine(
        backend_id=_field(data, "id", str),
        request_id=_field(data, "request_id", str),
        name=_field(data, "name", str),
        region=_field(data, "region", str),
        instance_type=_field(data, "instance_type", str),
        state=state,
        ip=_field(data, "ip", (str, type(None))),
        preemptible=_field(data, "preemptible", bool),
        reclaim_at=_optional_datetime(data, "reclaim_at"),
        detail=_field(data, "detail", str),
        created_at=_datetime(data, "created_at"),
        private_ip=_optional_text(data, "private_ip"),
        hosts=_optional_text(data, "hosts") or "",
        volumes=tuple(_strings(data.get("volumes", []), "volumes")),
        # The simulated fleet's machines boot the image as its own user, with sudo.
        ssh_sudo=True,
    )


def _strings(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidResponse(f"field {key!r} is not a list of strings")
    return value


def parse_volume(data: Any) -> Volume:
    if not isinstance(data, dict):
        raise InvalidResponse("volume is not an object")
    state = _field(data, "state", str)
    try:
        state = VolumeState(state)
    except ValueError as exc:
        raise InvalidResponse(f"unknown volume state {state!r}") from exc
    return Volume(
        backend_id=_field(data, "id", str),
        request_id=_field(data, "request_id", str),
        name=_field(data, "name", str),
        region=_field(data, "region", str),
        size_gb=_field(data, "size_gb", int),
        state=state,
        attached_to=tuple(_strings(_field(data, "attached_to", list), "attached_to")),
        mount_path=_field(data, "mount_path", str),
        created_at=_datetime(data, "created_at"),
    )


def parse_volumes(body: Any) -> list[Volume]:
    return [parse_volume(item) for item in _list_field(body, "volumes")]


def parse_storage(body: Any) -> list[StorageCapacity]:
    result = []
    for data in _list_field(body, "storage"):
        if not isinstance(data, dict):
            raise InvalidResponse("storage entry is not an object")
        result.append(
            StorageCapacity(
                region=_field(data, "region", str),
                free_gb=_field(data, "free_gb", int),
                total_gb=_field(data, "total_gb", int),
            )
        )
    return result


def parse_capacity(data: Any) -> Capacity:
    if not isinstance(data, dict):
        raise InvalidResponse("capacity entry is not an object")
    return Capacity(
        region=_field(data, "region", str),
        instance_type=_field(data, "instance_type", str),
        gpu_model=_field(data, "gpu_model", str),
        free_gpus=_field(data, "free_gpus", int),
        total_gpus=_field(data, "total_gpus", int),
        free_instances=_field(data, "free_instances", int),
        internal_gpus=_optional_count(data, "internal_gpus") or 0,
        customer_gpus=_optional_count(data, "customer_gpus") or 0,
        shortfall_gpus=_optional_count(data, "shortfall_gpus") or 0,
        internal_forecast_gpus=_optional_count(data, "internal_forecast_gpus"),
    )


def _optional_count(data: dict[str, Any], key: str) -> int | None:
    """A count an older simulator may not send (None), never negative."""
    if data.get(key) is None:
        return None
    value = _field(data, key, int)
    if value < 0:
        raise InvalidResponse(f"field {key!r} is negative: {value!r}")
    return int(value)


def parse_machines(body: Any) -> list[Machine]:
    return [parse_machine(item) for item in _list_field(body, "machines")]


def parse_capacities(body: Any) -> list[Capacity]:
    return [parse_capacity(item) for item in _list_field(body, "capacity")]
