"""The slurmrestd client: JWT in proxy mode, Slurm's error numbers mapped onto the interface's
errors, every call through the shared `HttpTransport` (time-out, retries with backoff).

One service token of the SlurmUser (`X-SLURM-USER-TOKEN`, or a token file read again when it
changes) and `X-SLURM-USER-NAME` set to the Unix user the jobs run as (the service user itself
for the accounting API).
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from ...errors import (
    AuthenticationError,
    InvalidResponse,
    NotFound,
    PermanentError,
    ProvisioningError,
    TransientError,
)
from ...transport import HttpDriver, HttpTransport, Timeout, status_error

API = "/slurm/v0.0.38"
DB_API = "/slurmdb/v0.0.38"

# Slurm error numbers (slurm_errno.h) that mean "the same call may work later".
TRANSIENT_CODES = frozenset(
    {
        *range(1001, 1005),  # SLURM_COMMUNICATIONS_{CONNECTION,SEND,RECEIVE,SHUTDOWN}_ERROR
        1013,  # SLURM_COMMUNICATIONS_MISSING_SOCKET_ERROR
        *range(1019, 1026),  # rejected, time-outs, delayed, shutting down
        *range(1800, 1806),  # SLURMCTLD_COMMUNICATIONS_*: slurmctld is down or unreachable
        2027,  # ESLURM_IN_STANDBY_MODE
        *range(5003, 5006),  # socket time-outs
        7000,  # ESLURM_DB_CONNECTION: slurmdbd is down
        7008,  # ESLURM_DB_CONNECTION_INVALID
    }
)
AUTH_CODES = frozenset(
    {
        1007,  # SLURM_PROTOCOL_AUTHENTICATION_ERROR
        2002,  # ESLURM_ACCESS_DENIED
        *range(6000, 6012),  # ESLURM_AUTH_*: invalid or expired credential
        9008,  # ESLURM_REST_AUTH_FAIL
    }
)
INVALID_JOB_ID = 2017
ALREADY_DONE = 2021  # ESLURM_ALREADY_DONE: job/step already completing or completed
NODE_CONFIG_UNAVAILABLE = 2014  # ESLURM_REQUESTED_NODE_CONFIG_UNAVAILABLE
INVALID_ACCOUNT = 2045  # ESLURM_INVALID_ACCOUNT
NOTHING_FOUND = 9003  # ESLURM_REST_EMPTY_RESULT: a query that matched nothing


class SlurmClient(HttpDriver):
    """Calls to slurmrestd's `v0.0.38` and `dbv0.0.38` APIs; the slurm driver is one."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str = "",
        token_file: str | os.PathLike[str] | None = None,
        user: str = "backfill",
        service_user: str = "slurm",
        timeout: Timeout = 10.0,
        retries: int = 2,
        backoff: float = 0.5,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not token and not token_file:
            raise ValueError("the slurm driver needs SLURM_TOKEN or SLURM_TOKEN_FILE")
        self.transport = HttpTransport(
            base_url,
            service="Slurm's REST API",
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            session=session,
            sleep=sleep,
        )
        self.user = user
        self.service_user = service_user
        self._token = token
        self._token_file = Path(token_file) if token_file else None
        self._token_mtime: float | None = None

    def token(self) -> str:
        """The service token; a token file is read again whenever it changes (rotation)."""
        if self._token_file is None:
            return self._token
        try:
            mtime = self._token_file.stat().st_mtime
            if mtime != self._token_mtime:
                self._token = self._token_file.read_text().strip()
                self._token_mtime = mtime
        except OSError as exc:
            raise AuthenticationError(f"cannot read SLURM_TOKEN_FILE {self._token_file}") from exc
        return self._token

    def call(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        *,
        params: dict[str, str] | None = None,
        what: str = "",
        user: str | None = None,
    ) -> Any:
        """One API call as `user` (default: the job user), retried on transient errors,
        garbage answers included; the answer's JSON."""
        return self.transport.retrying(
            lambda: self.call_once(method, path, payload, params=params, what=what, user=user)
        )

    def call_once(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        *,
        params: dict[str, str] | None = None,
        what: str = "",
        user: str | None = None,
    ) -> Any:
        """The same call, tried once."""
        what = f"slurmrestd {what or method + ' ' + path}"
        headers = {"X-SLURM-USER-NAME": user or self.user, "X-SLURM-USER-TOKEN": self.token()}
        response = self.transport.send(
            method, path, what=what, json=payload, params=params, headers=headers
        )
        return self._read(response, what, path)

    def _read(self, response: requests.Response, what: str, path: str) -> Any:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        errors = _errors(body)
        if status in (401, 403):
            raise AuthenticationError(
                f"{what}: HTTP {status}, Slurm refused the token "
                "(expired or revoked? check SLURM_TOKEN / SLURM_TOKEN_FILE)"
            )
        if errors:
            error = _error(what, status, errors)
            if (
                isinstance(error, TransientError)
                and _unspecified(errors)
                and path.startswith(API + "/")
            ):
                # slurmrestd 22.05 answers a bad token with the same "Unspecified error" as a
                # slurmctld that is down: tell them apart.
                self._raise_if_token_refused(what)
            raise error
        failed = status_error(what, status, response.text[:200])
        if failed is not None:
            raise failed
        if body is None:
            raise InvalidResponse(f"{what}: HTTP {status} answer is not JSON")
        return body

    def _raise_if_token_refused(self, what: str) -> None:
        """AuthenticationError when the service token is expired, malformed or refused.

        An expired or malformed token is seen in the token itself (its `exp` claim; no
        signature check here, Slurm does that). A token Slurm does not accept otherwise (a new
        jwt key, a wrong user) is refused by slurmdbd with an authentication error that
        slurmrestd does pass on, so one accounting call with the same token tells.
        """
        token = self.token()
        claims = _jwt_claims(token)
        if claims is None:
            raise AuthenticationError(f"{what}: the Slurm token is not a JWT (check SLURM_TOKEN)")
        expires = claims.get("exp")
        if isinstance(expires, int | float) and expires <= time.time():
            when = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            raise AuthenticationError(f"{what}: the Slurm token expired at {when}")
        try:
            self.call_once(
                "GET",
                f"{DB_API}/user/{self.service_user}",
                what="check token",
                user=self.service_user,
            )
        except AuthenticationError as exc:
            raise AuthenticationError(f"{what}: Slurm refused the token ({exc})") from exc
        except (PermanentError, TransientError, InvalidResponse):
            return  # the token is not the problem as far as we can tell


def has_code(error: ProvisioningError, code: int) -> bool:
    """Whether Slurm's error number `code` is among those of `error`'s message."""
    return f"[{code}]" in str(error)


def _errors(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return []
    return [e for e in body["errors"] if isinstance(e, dict)]


def _error(what: str, status: int, errors: list[dict[str, Any]]) -> ProvisioningError:
    def code(error: dict[str, Any]) -> int:
        value = error.get("error_code", error.get("error_number"))
        return value if isinstance(value, int) else -1

    codes = [code(e) for e in errors if code(e) > 0]
    text = "; ".join(
        " - ".join(str(part) for part in (e.get("error"), e.get("description")) if part)
        + (f" [{code(e)}]" if code(e) > 0 else "")
        for e in errors
    )
    message = f"{what}: {text}"
    if any(c in AUTH_CODES for c in codes) or "authentication" in text.lower():
        return AuthenticationError(f"{message} (expired or revoked token?)")
    if INVALID_JOB_ID in codes:
        return NotFound(message)
    if any(c in TRANSIENT_CODES for c in codes):
        return TransientError(message)
    if not codes and status >= 500:
        # slurmrestd answers "Unspecified error" (-1) when it cannot reach slurmctld.
        return TransientError(f"{message} (is slurmctld down?)")
    if NODE_CONFIG_UNAVAILABLE in codes:
        return PermanentError(f"Slurm refused the request: {text}")
    return PermanentError(message)


def _unspecified(errors: list[dict[str, Any]]) -> bool:
    return all(e.get("error_number", e.get("error_code", -1)) in (-1, None) for e in errors)


def _jwt_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT, unverified; None when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, TypeError):
        return None
    return claims if isinstance(claims, dict) else None
