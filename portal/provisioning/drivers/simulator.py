"""HTTP driver of the project's own simulator (`python -m portal.simulator`)."""

from __future__ import annotations

import builtins
import contextlib
import logging
import time
from collections.abc import Callable
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
    TransientError,
)
from ..interface import Capacity, Machine, MachineState
from .transport import transport_options

Timeout = float | tuple[float, float]
T = TypeVar("T")
logger = logging.getLogger(__name__)


class SimulatorBackend:
    """Talks to the simulator's `/v1` API.

    Every call has a time-out (a number, or a `(connect, read)` pair in seconds) and is retried
    `retries` times on transient errors, waiting `backoff * 2**n` seconds between attempts.
    Retrying is safe because every endpoint is idempotent (create on its request id).
    """

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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.session = session or requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {token}", "User-Agent": "backfill-portal"}
        )
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Any) -> SimulatorBackend:
        return cls(
            getattr(settings, "SIMULATOR_URL", "http://127.0.0.1:8070"),
            getattr(settings, "PROVISIONING_TOKEN", ""),
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
        return self._call("POST", "/v1/machines", parse_machine, payload).backend_id

    def get(self, backend_id: str) -> Machine:
        return self._call("GET", _machine_path(backend_id), parse_machine)

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
        attempt = 0
        while True:
            try:
                return parse(self._call_once(method, path, payload))
            except TransientError:
                if attempt >= self.retries:
                    raise
            self._sleep(self.backoff * 2**attempt)
            attempt += 1

    def _call_once(self, method: str, path: str, payload: dict[str, Any] | None) -> Any:
        what = f"simulator {method} {path}"
        # Writes at INFO (a launch can be followed to its create call), reads at DEBUG.
        level = logging.DEBUG if method == "GET" else logging.INFO
        started = time.monotonic()
        try:
            response = self.session.request(
                method, self.base_url + path, json=payload, timeout=self.timeout
            )
        except requests.Timeout as exc:
            logger.log(level, "backend call %s: timed out", what)
            raise TransientError(f"{what}: no answer within {self.timeout}s") from exc
        except requests.RequestException as exc:
            logger.log(level, "backend call %s: %s", what, type(exc).__name__)
            raise TransientError(f"{what}: {exc}") from exc

        status = response.status_code
        logger.log(
            level,
            "backend call %s: HTTP %s in %d ms",
            what,
            status,
            (time.monotonic() - started) * 1000,
        )
        if status >= 500 or status in (408, 429):
            raise TransientError(f"{what}: HTTP {status} {_error_message(response)}")
        if status >= 400:
            raise _client_error(what, response)
        try:
            return response.json()
        except ValueError as exc:
            raise InvalidResponse(f"{what}: HTTP {status} answer is not JSON") from exc


def _reservation_path(reservation_id: str) -> str:
    return f"/v1/reservations/{quote(reservation_id, safe='')}"


def _ignore(body: Any) -> None:
    return None


def _machine_path(backend_id: str) -> str:
    return f"/v1/machines/{quote(backend_id, safe='')}"


def _error_body(response: requests.Response) -> tuple[str, str]:
    try:
        error = response.json()["error"]
        return str(error.get("code", "")), str(error.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return "", response.text[:200]


def _error_message(response: requests.Response) -> str:
    return _error_body(response)[1]


def _client_error(what: str, response: requests.Response) -> PermanentError:
    code, message = _error_body(response)
    text = f"{what}: HTTP {response.status_code} {message}".rstrip()
    if response.status_code in (401, 403):
        return AuthenticationError(f"{text} (check PROVISIONING_TOKEN)")
    if response.status_code == 404:
        return NotFound(text)
    if code == "capacity":
        return CapacityError(text)
    if code == "invalid_state":
        return InvalidState(text)
    return PermanentError(text)


# Validation of answers: anything unexpected is an InvalidResponse, never a KeyError.


def _list_field(body: Any, key: str) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise InvalidResponse(f"answer has no list {key!r}")
    return body[key]


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
    )


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
    )


def parse_machines(body: Any) -> list[Machine]:
    return [parse_machine(item) for item in _list_field(body, "machines")]


def parse_capacities(body: Any) -> list[Capacity]:
    return [parse_capacity(item) for item in _list_field(body, "capacity")]
