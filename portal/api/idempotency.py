"""Idempotency-Key on API writes, honoured like Stripe's.

The first request with a key runs and its answer (status and the exact JSON bytes) is kept for
API_IDEMPOTENCY_TTL; the same key with the same request gets that answer again, byte for byte,
with `Idempotent-Replayed: true`; the same key with another request is refused (409
idempotency_key_reused), and so is a retry while the first is still running (409
idempotency_in_progress) for up to API_IDEMPOTENCY_LEASE (30 s): a claim older than that was
left behind by a process that died, and a retry takes it over (a launch returns the instance it
already made). Answers of 500 and above are not kept: a retry runs again.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from typing import cast

from django.http import HttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.utils import OpenApiParameter
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api import services
from portal.api.errors import ApiError, api_exception_handler
from portal.api.models import ApiToken

HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_NAMESPACE = uuid.UUID("6f1f7a36-4d3c-4b0e-9d7e-3f5d1c2b8a90")


# The header as the OpenAPI document describes it on every create.
PARAMETER = OpenApiParameter(
    HEADER,
    {"type": "string", "pattern": "^[!-~]{1,255}$"},
    OpenApiParameter.HEADER,
    required=False,
    description="1–255 visible ASCII characters; a UUID is a good choice. The same key with "
    "the same body returns the first answer again (with Idempotent-Replayed: true); with "
    "another body a 409. Keys are remembered for 24 hours.",
)


def idempotency_key(request) -> str | None:
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    if not _KEY.match(raw):
        message = "Idempotency-Key must be 1 to 255 visible ASCII characters, e.g. a UUID."
        raise ApiError(message, code="invalid_idempotency_key", details={HEADER: [message]})
    return raw


def service_key(token, key: str) -> uuid.UUID:
    """The key handed to a service that is idempotent itself (instance_launch): one per token."""
    return uuid.uuid5(_NAMESPACE, f"{token.pk}:{key}")


def request_hash(request) -> str:
    canonical = json.dumps(
        {"method": request.method, "path": request.path, "body": request.data},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _json_response(status_code: int | None, body: str, *, replayed: bool) -> HttpResponse:
    response = HttpResponse(body, status=status_code, content_type="application/json")
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return response


def idempotent(view: APIView, request: Request, run: Callable[[], Response]) -> HttpResponseBase:
    """Run `run()` (which returns a DRF Response or raises) under the request's key, if any."""
    key = idempotency_key(request)
    if key is None:
        return run()
    record, fresh = services.idempotency_claim(
        token=cast(ApiToken, request.auth),  # an API view's request: the bearer token
        key=key,
        request_hash=request_hash(request),
    )
    if not fresh:
        return _json_response(record.status_code, record.response_body, replayed=True)
    try:
        response = run()
    except Exception as exc:
        handled = api_exception_handler(exc, {"view": view, "request": request})
        if handled is None:
            services.idempotency_release(record=record)
            raise
        response = handled
    if response.status_code >= 500:
        services.idempotency_release(record=record)
        return response
    body = JSONRenderer().render(response.data).decode()
    services.idempotency_complete(record=record, status_code=response.status_code, body=body)
    return _json_response(response.status_code, body, replayed=False)
