"""The only way the CLI talks to Backfill: HTTP requests to its public API (/api/v1/).

Every failure becomes a CliError: one line for a person, and an exit code for a script
(see EXIT_CODES). The API's error shape is {"error": {"code", "message", "details"}}.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import requests

from backfill_cli import __version__

# The exit codes scripts can trust (also in `backfill --help` and the README).
OK = 0
FAILED = 1  # the request was refused as invalid (400), or anything else that went wrong
USAGE = 2  # the command line itself is wrong
NOT_SIGNED_IN = 3  # no token, or the server refused it (invalid, revoked, expired)
FORBIDDEN = 4  # your role or the token's scopes do not allow it (403)
NOT_FOUND = 5  # no such instance, invoice, … in your organization (404)
REFUSED = 6  # a rule said no now: quota, capacity, state, rate limit (409, 429)
UNREACHABLE = 7  # the server is down, timed out or failed (connection errors, 5xx)
NOT_REACHED = 8  # --wait: the instance ended in another state, or the wait timed out

EXIT_CODES = {
    OK: "success",
    FAILED: "refused as invalid, or another error",
    USAGE: "bad command line",
    NOT_SIGNED_IN: "not signed in, or the token was refused (run backfill login)",
    FORBIDDEN: "your role or the token's scopes do not allow it",
    NOT_FOUND: "no such object in your organization",
    REFUSED: "refused by a rule now (quota, capacity, state, rate limit)",
    UNREACHABLE: "the server cannot be reached or failed",
    NOT_REACHED: "--wait ended without reaching the state",
}

_STATUS_EXIT = {
    400: FAILED,
    401: NOT_SIGNED_IN,
    403: FORBIDDEN,
    404: NOT_FOUND,
    409: REFUSED,
    413: FAILED,
    415: FAILED,
    429: REFUSED,
}


# What to do next, after the server's own message, for the codes a CLI user can act on.
HINTS = {
    "quota_exceeded": "From here: `backfill quotas request`.",
    "token_expired": "Create a new token, then `backfill login`.",
    "token_revoked": "Create a new token, then `backfill login`.",
}


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = FAILED, *, code: str = ""):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.code = code


def _error_message(response: requests.Response) -> tuple[str, str]:
    try:
        error = response.json()["error"]
        message, code = str(error["message"]), str(error.get("code", ""))
    except (ValueError, KeyError, TypeError):
        return f"The server answered {response.status_code} {response.reason}.", ""
    details = error.get("details") if isinstance(error, dict) else None
    if code in ("validation_error", "unknown_field") and isinstance(details, dict):
        fields = "; ".join(
            f"{field}: {' '.join(map(str, problems)) if isinstance(problems, list) else problems}"
            for field, problems in details.items()
        )
        if fields and fields not in message:
            message = f"{message} ({fields})"
    return message, code


class Client:
    def __init__(self, url: str, token: str | None, *, timeout: float = 30.0):
        self.base = url.rstrip("/")
        self.api = self.base + "/api/v1"
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"backfill-cli/{__version__}"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json: Any = None,
        idempotent: bool = False,
        stream: bool = False,
    ) -> requests.Response:
        if not self.token:
            raise CliError(
                "You are not signed in. Run `backfill login` (or set BACKFILL_TOKEN).",
                NOT_SIGNED_IN,
                code="no_token",
            )
        headers = {"Accept": "application/json"} if not stream else {}
        if idempotent:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        try:
            response = self.session.request(
                method,
                self.api + path,
                params={k: v for k, v in (params or {}).items() if v is not None},
                json=json,
                headers=headers,
                timeout=self.timeout,
                stream=stream,
            )
        except requests.exceptions.Timeout:
            raise CliError(
                f"{self.base} did not answer within {self.timeout:g} s.", UNREACHABLE
            ) from None
        except requests.exceptions.ConnectionError:
            raise CliError(
                f"Cannot reach {self.base}: is the server running and the URL right?",
                UNREACHABLE,
                code="unreachable",
            ) from None
        except requests.exceptions.RequestException as exc:
            raise CliError(f"The request to {self.base} failed: {exc}", UNREACHABLE) from None
        if response.status_code >= 400:
            message, code = _error_message(response)
            if response.status_code >= 500:
                raise CliError(
                    f"The server failed ({response.status_code}): {message}",
                    UNREACHABLE,
                    code=code,
                )
            if response.status_code == 401 and code in ("not_authenticated", "invalid_token"):
                message += " Run `backfill login` with a valid token."
            elif code in HINTS:
                message += " " + HINTS[code]
            raise CliError(
                message, _STATUS_EXIT.get(response.status_code, FAILED), code=code
            ) from None
        return response

    def get(self, path: str, **params) -> Any:
        return self.request("GET", path, params=params).json()

    def post(self, path: str, body: Any = None, *, idempotent: bool = False) -> Any:
        response = self.request("POST", path, json=body, idempotent=idempotent)
        return response.json() if response.content else None

    def pages(self, path: str, *, limit: int = 10_000, **params) -> Iterator[dict]:
        """Every result of a paginated list (or the items of a plain one)."""
        page, seen = 1, 0
        while True:
            body = self.get(path, page=page, page_size=100, **params)
            if isinstance(body, list):
                yield from body
                return
            for item in body["results"]:
                yield item
                seen += 1
                if seen >= limit:
                    return
            if not body.get("next"):
                return
            page += 1
