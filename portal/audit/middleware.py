"""Keep the request being served at hand, so that services deep below a view or an API view can
write audit entries with the IP and the API token without every call passing `request` down.

Only `audit_record` reads it (see `portal.audit.services`), and only when it was given an actor:
a task or a transition without an actor stays a system entry even while a request is served.
"""

from contextvars import ContextVar

_current_request: ContextVar = ContextVar("audit_current_request", default=None)


def current_request():
    """The HttpRequest being served in this thread or task, or None."""
    return _current_request.get()


class AuditRequestMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            _current_request.reset(token)
