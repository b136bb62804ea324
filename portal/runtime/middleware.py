"""The first middleware of every request: who the client is, and the request's log context.

TrustedProxyMiddleware: proxy headers (X-Forwarded-For, -Proto, -Host, Forwarded, X-Real-IP,
X-Request-ID) count only when the connection comes from an address in TRUSTED_PROXIES. Then
REMOTE_ADDR becomes the client the proxies saw (the right-most X-Forwarded-For hop that is not
itself a trusted proxy), X-Forwarded-Proto tells Django the scheme (SECURE_PROXY_SSL_HEADER),
and the proxy's request id is kept. From any other address those headers are deleted before
anything reads them: a client cannot forge its address, its scheme or a request id.

RequestContextMiddleware: a request id for every request (the trusted proxy's, or a new one),
bound to the log context with the user and the organization once they are known, sent back as
the X-Request-ID header, and carried into the Celery tasks the request enqueues
(portal.runtime.celery_hooks).
"""

from __future__ import annotations

import contextlib
import re
import uuid

import structlog
from django.conf import settings

from portal.lib.addresses import Network, address_in, is_ip, parse_networks

PROXY_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_FORWARDED",
    "HTTP_X_REAL_IP",
    "HTTP_X_REQUEST_ID",
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


def trusted_proxies() -> tuple[Network, ...]:
    return parse_networks(tuple(getattr(settings, "TRUSTED_PROXIES", ())))


class TrustedProxyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        proxies = trusted_proxies()
        peer = meta.get("REMOTE_ADDR", "")
        if proxies and address_in(peer, proxies):
            hops = [h.strip() for h in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
            client = next((h for h in reversed(hops) if not address_in(h, proxies)), None)
            if client is None and hops:
                client = hops[0]  # every hop is a proxy of ours: the first one is the client
            if client and is_ip(client):
                meta["REMOTE_ADDR"] = client
            meta["backfill.proxy_peer"] = peer
        else:
            for header in PROXY_HEADERS:
                meta.pop(header, None)
        return self.get_response(request)


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """After TrustedProxyMiddleware (which has removed an untrusted X-Request-ID)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        offered = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = offered if _REQUEST_ID.match(offered) else new_request_id()
        request.request_id = request_id
        # gunicorn's access line reads it from the WSGI environ (the same dict as META).
        request.META["backfill.request_id"] = request_id
        # Cleared here, not after the response: Django writes its "Not Found" lines after the
        # middleware returns, and they belong to this request too.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            response = self.get_response(request)
        finally:
            # For gunicorn's access line, written after the response (portal/lib/gunicorn.py).
            request.META["backfill.log_context"] = structlog.contextvars.get_contextvars()
        response["X-Request-ID"] = request_id
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        # Only with a session cookie (otherwise anonymous: no query), and never at the cost of
        # the request: /healthz must answer while the database is down.
        if request.COOKIES.get(settings.SESSION_COOKIE_NAME) and hasattr(request, "user"):
            # The view meets the same error (if it cares), and reports it.
            with contextlib.suppress(Exception):
                if request.user.is_authenticated:
                    structlog.contextvars.bind_contextvars(user_id=request.user.pk)
        org = view_kwargs.get("org")
        if isinstance(org, str):
            structlog.contextvars.bind_contextvars(org=org)
        return None
