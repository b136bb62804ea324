"""The one HTTP transport of the drivers: a requests session, a time-out on every call, retries
with exponential backoff on transient errors, and one mapping of HTTP failures onto the
interface's errors (`errors.py`).

A driver builds an `HttpTransport` from its settings (`transport_options`), sends its requests
through `call()` and turns an answer into a result (or a more precise error from its API's own
error body) in the `read` function it passes. Whatever `read` raises as a `TransientError`
(`InvalidResponse` included: a garbage answer) is retried like a time-out; anything else is
raised at once. Retrying is safe because every driver call is idempotent.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import requests

from .errors import (
    AuthenticationError,
    InvalidResponse,
    PermanentError,
    ProvisioningError,
    TransientError,
)

T = TypeVar("T")
V = TypeVar("V")
Timeout = float | tuple[float, float]

# HTTP statuses worth another try besides every 5xx: request time-out, too many requests.
TRANSIENT_STATUSES = frozenset({408, 429})
USER_AGENT = "backfill-portal"


def transport_options(settings: Any) -> dict[str, Any]:
    """Time-out, retries and backoff as every HTTP driver reads them from settings:
    `PROVISIONING_TIMEOUT` (seconds, or a (connect, read) pair), `PROVISIONING_RETRIES`
    (retries after the first attempt) and `PROVISIONING_BACKOFF` (seconds before the first
    retry, doubled for each next one)."""
    timeout = getattr(settings, "PROVISIONING_TIMEOUT", 10.0)
    return {
        "timeout": tuple(timeout) if isinstance(timeout, list | tuple) else float(timeout),
        "retries": int(getattr(settings, "PROVISIONING_RETRIES", 2)),
        "backoff": float(getattr(settings, "PROVISIONING_BACKOFF", 0.5)),
    }


def status_error(what: str, status: int, message: str = "") -> ProvisioningError | None:
    """The interface's error for an HTTP status (None for a success): 401 and 403 refuse our
    credentials, 408, 429 and 5xx may work later, any other 4xx will not. A driver whose API
    gives a status a sharper meaning (the simulator's 404 is "no such machine") refines it."""
    text = f"{what}: HTTP {status} {message}".rstrip()
    if status in (401, 403):
        return AuthenticationError(text)
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientError(text)
    if status >= 400:
        return PermanentError(text)
    return None


def json_body(response: requests.Response, what: str) -> Any:
    """The answer's JSON; an `InvalidResponse` (retried) when it is not JSON."""
    try:
        return response.json()
    except ValueError as exc:
        raise InvalidResponse(f"{what}: HTTP {response.status_code} answer is not JSON") from exc


logger = logging.getLogger(__name__)

# Sessions kept between drivers: each Celery task builds its driver afresh (`get_backend()`),
# and a new requests session per task means a new TCP connection (and for HTTPS a new TLS
# handshake) per backend call. Kept per process and thread (a session is not shared across
# a fork or between threads), base URL and headers (the token among them), the most recent few.
_SESSIONS: OrderedDict[tuple[object, ...], requests.Session] = OrderedDict()
_SESSIONS_KEPT = 8
_sessions_lock = threading.Lock()


def shared_session(base_url: str, headers: Mapping[str, str]) -> requests.Session:
    """A requests session for `base_url` with `headers`, the same one for every driver this
    process and thread builds with the same URL and headers: its connections are reused."""
    key = (os.getpid(), threading.get_ident(), base_url, tuple(sorted(headers.items())))
    with _sessions_lock:
        session = _SESSIONS.get(key)
        if session is not None:
            _SESSIONS.move_to_end(key)
            return session
        session = requests.Session()
        session.headers.update(headers)
        _read_environment_once(session, base_url)
        _SESSIONS[key] = session
        while len(_SESSIONS) > _SESSIONS_KEPT:
            _SESSIONS.popitem(last=False)[1].close()  # a driver still holding it reconnects
        return session


def _read_environment_once(session: requests.Session, base_url: str) -> None:
    """The proxies and CA bundle the environment names for `base_url`, read once for the
    session rather than on every call (requests reads the whole environment per request,
    about a millisecond of CPU each: most of a quick backend call)."""
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle


class HttpTransport:
    """HTTP calls to one backend: time-out, retries with backoff, errors of the interface.

    `timeout` is a number or a `(connect, read)` pair in seconds; a call is tried `retries`
    more times after a transient error, waiting `backoff * 2**n` seconds before retry n+1.
    `service` names the backend in the message of an unreachable one. The attributes may be
    changed after construction (the drivers expose them as their own).
    """

    def __init__(
        self,
        base_url: str,
        *,
        service: str,
        timeout: Timeout = 10.0,
        retries: int = 2,
        backoff: float = 0.5,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.service = service
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        if session is None:
            self.session = shared_session(self.base_url, all_headers)
        else:
            self.session = session
            self.session.headers.update(all_headers)
        self.sleep = sleep

    def call(
        self,
        method: str,
        path: str,
        read: Callable[[requests.Response, str], T],
        *,
        what: str,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Callable[[], Mapping[str, str]] | None = None,
    ) -> T:
        """One API call, retried on transient errors (garbage answers included): `read` gets
        the response and `what` (the call as errors name it) and returns the result or raises.
        `headers` is called before each attempt (a token that may have been rotated)."""
        return self.retrying(
            lambda: read(
                self.send(
                    method,
                    path,
                    what=what,
                    json=json,
                    params=params,
                    headers=headers() if headers else None,
                ),
                what,
            )
        )

    def retrying(self, attempt: Callable[[], V]) -> V:
        """Run `attempt` until it does not raise a `TransientError`, at most `retries` more
        times, sleeping `backoff * 2**n` before retry n+1; the last error is raised."""
        tried = 0
        while True:
            try:
                return attempt()
            except TransientError:
                if tried >= self.retries:
                    raise
            self.sleep(self.backoff * 2**tried)
            tried += 1

    def send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One HTTP request, not retried; no answer in time or no connection is transient.

        Logged as "backend call …" (writes at INFO, so that a launch can be followed by its
        request id to its create call; reads at DEBUG), never with the body or headers."""
        level = logging.DEBUG if method == "GET" else logging.INFO
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                json=json,
                params=params,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.Timeout as exc:
            logger.log(level, "backend call %s: timed out", what)
            raise TransientError(f"{what}: no answer within {self.timeout}s") from exc
        except requests.RequestException as exc:
            logger.log(level, "backend call %s: %s", what, type(exc).__name__)
            raise TransientError(f"{what}: {self.service} is unreachable ({exc})") from exc
        logger.log(
            level,
            "backend call %s: HTTP %s in %d ms",
            what,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response


class HttpDriver:
    """Base of the HTTP drivers: the transport's settings are the driver's own attributes
    (`driver.retries = 0` changes its transport's)."""

    transport: HttpTransport

    @property
    def base_url(self) -> str:
        return self.transport.base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        self.transport.base_url = value.rstrip("/")

    @property
    def timeout(self) -> Timeout:
        return self.transport.timeout

    @timeout.setter
    def timeout(self, value: Timeout) -> None:
        self.transport.timeout = value

    @property
    def retries(self) -> int:
        return self.transport.retries

    @retries.setter
    def retries(self, value: int) -> None:
        self.transport.retries = max(0, value)

    @property
    def backoff(self) -> float:
        return self.transport.backoff

    @backoff.setter
    def backoff(self, value: float) -> None:
        self.transport.backoff = value

    @property
    def session(self) -> requests.Session:
        return self.transport.session
