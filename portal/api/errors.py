"""The one error shape of the API, and the exception handler that produces it for everything.

    {"error": {"code": "machine_readable", "message": "Human text.", "details": {...}}}

`details` is optional: field errors as {"field": ["message", ...]}, or facts about the refusal
(a quota's limit and use). Services raise ApplicationError; its code decides the status here,
in this one place.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from portal.lib.errors import ApplicationError
from portal.quotas.services import QuotaExceeded

# ApplicationError codes that are not plain bad input (400).
STATUS_FOR_CODE = {
    "forbidden": status.HTTP_403_FORBIDDEN,
    "not_found": status.HTTP_404_NOT_FOUND,
    "duplicate": status.HTTP_409_CONFLICT,
    "name_taken": status.HTTP_409_CONFLICT,
    "illegal_transition": status.HTTP_409_CONFLICT,
    "invalid_state": status.HTTP_409_CONFLICT,
    "quota_exceeded": status.HTTP_409_CONFLICT,
    "no_capacity": status.HTTP_409_CONFLICT,
    "launch_blocked": status.HTTP_409_CONFLICT,
    "idempotency_key_reused": status.HTTP_409_CONFLICT,
    "idempotency_in_progress": status.HTTP_409_CONFLICT,
    "last_owner": status.HTTP_409_CONFLICT,
    "expired": status.HTTP_409_CONFLICT,
    "limit": status.HTTP_409_CONFLICT,
    "no_fleet": status.HTTP_409_CONFLICT,
    "exceeds_fleet": status.HTTP_409_CONFLICT,
    "rate_limited": status.HTTP_429_TOO_MANY_REQUESTS,
    "attached": status.HTTP_409_CONFLICT,
    "unsupported": status.HTTP_409_CONFLICT,
}

# Codes for DRF's own exceptions, by class (the first match wins).
_DRF_CODES: list[tuple[type[exceptions.APIException], str]] = [
    (exceptions.NotAuthenticated, "not_authenticated"),
    (exceptions.AuthenticationFailed, "invalid_token"),
    (exceptions.PermissionDenied, "forbidden"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.ParseError, "invalid_json"),
    (exceptions.Throttled, "rate_limited"),
]


class ApiError(exceptions.APIException):
    """An error of the API layer itself (a bad header or query parameter)."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid_request",
        status_code: int = status.HTTP_400_BAD_REQUEST,
        details: dict | None = None,
    ):
        super().__init__(message, code)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def error_json_response(status_code: int, code: str, message: str, **kwargs) -> JsonResponse:
    """The error shape outside DRF (middleware: body too large, no such URL, server error)."""
    return JsonResponse(error_body(code, message, kwargs.get("details")), status=status_code)


def _flatten(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested field errors as {"field.sub.0": ["message"]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for field, messages in _flatten(value, name).items():
                flat.setdefault(field, []).extend(messages)
    elif (
        isinstance(errors, list)
        and errors
        and not all(isinstance(e, (str, exceptions.ErrorDetail)) for e in errors)
    ):
        for index, value in enumerate(errors):
            if value:
                flat.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
    elif isinstance(errors, list):
        flat[prefix or "non_field_errors"] = [str(e) for e in errors]
    else:
        flat[prefix or "non_field_errors"] = [str(errors)]
    return flat


def _codes(errors: Any) -> set[str]:
    if isinstance(errors, dict):
        return set().union(*(_codes(v) for v in errors.values())) if errors else set()
    if isinstance(errors, list):
        return set().union(*(_codes(v) for v in errors)) if errors else set()
    return {getattr(errors, "code", "invalid")}


def _validation_response(exc: exceptions.ValidationError) -> tuple[str, str, dict]:
    fields = _flatten(exc.detail)
    code = "unknown_field" if "unknown_field" in _codes(exc.detail) else "validation_error"
    first_field, first_messages = next(iter(fields.items()), ("", ["Invalid input."]))
    if first_field in ("", "non_field_errors"):
        message = first_messages[0]
    else:
        message = f"{first_field}: {first_messages[0]}"
    if len(fields) > 1:
        message += f" (and {len(fields) - 1} more field{'s' if len(fields) > 2 else ''})"
    return code, message, fields


def _application_error(exc: ApplicationError, view) -> tuple[int, str, str, dict | None]:
    status_code = STATUS_FOR_CODE.get(exc.code, status.HTTP_400_BAD_REQUEST)
    if exc.field and status_code == status.HTTP_404_NOT_FOUND:
        status_code = status.HTTP_400_BAD_REQUEST  # a field naming what is not there is bad input
    details: dict[str, Any] | None = None
    if exc.field:
        names = getattr(view, "field_names", {}) or {}
        details = {names.get(exc.field, exc.field): [exc.message]}
    return status_code, exc.code, exc.message, details


def _quota_details(exc) -> dict:
    return {
        "region": exc.region.code,
        "gpu_model": exc.gpu_model.code,
        "kind": str(exc.kind),
        "limit": exc.limit,
        "used": exc.used,
        "requested": exc.requested,
        "request_url": settings.SITE_URL + exc.request_url,
    }


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """EXCEPTION_HANDLER: every exception a view raises, in the error shape.

    Returns None (a real server error: Django logs it, the middleware shapes the 500) only for
    exceptions that are none of ours.
    """
    view = context.get("view")
    headers: dict[str, str] = {}
    details: dict | None = None
    if isinstance(exc, ApiError):
        status_code, code, message, details = exc.status_code, exc.code, exc.message, exc.details
    elif isinstance(exc, ApplicationError):
        status_code, code, message, details = _application_error(exc, view)
        if isinstance(exc, QuotaExceeded):
            details = {**(details or {}), **_quota_details(exc)}
    elif isinstance(exc, Http404):
        status_code, code = status.HTTP_404_NOT_FOUND, "not_found"
        message = str(exc) if exc.args and str(exc) else "Not found."
        message = message if message.endswith(".") else message + "."
    elif isinstance(exc, DjangoPermissionDenied):
        status_code, code = status.HTTP_403_FORBIDDEN, "forbidden"
        message = str(exc) or "You may not do this."
    elif isinstance(exc, RequestDataTooBig):
        status_code, code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "body_too_large"
        message = "The request body is too large."
    elif isinstance(exc, exceptions.ValidationError):
        status_code = status.HTTP_400_BAD_REQUEST
        code, message, details = _validation_response(exc)
    elif isinstance(exc, exceptions.APIException):
        status_code = exc.status_code
        code = next((c for cls, c in _DRF_CODES if isinstance(exc, cls)), "error")
        detail_code = exc.get_codes()
        if isinstance(detail_code, str) and detail_code not in (
            "error",
            "permission_denied",
            "authentication_failed",
            "not_authenticated",
            "parse_error",
            "throttled",
            "not_found",
            "method_not_allowed",
            "unsupported_media_type",
            "not_acceptable",
        ):
            code = detail_code
        message = str(exc.detail)
        if isinstance(exc, exceptions.Throttled):
            wait = max(1, math.ceil(exc.wait or 1))  # type: ignore[attr-defined]  # not in the DRF stubs
            headers["Retry-After"] = str(wait)
            message = f"Too many requests for this token; retry in {wait} s."
            details = {"retry_after": wait}
        if isinstance(exc, exceptions.NotAuthenticated):
            message = "Send a token: Authorization: Bearer bf_…"
    else:
        return None
    if status_code == status.HTTP_401_UNAUTHORIZED:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="api"')
    if status_code == status.HTTP_429_TOO_MANY_REQUESTS:  # documented on every operation
        headers.setdefault("Retry-After", str(getattr(exc, "retry_after", 60)))
    return Response(error_body(code, message, details), status=status_code, headers=headers)
