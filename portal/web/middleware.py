import logging

from django.conf import settings

logger = logging.getLogger(__name__)

# Scripts only from our own static files: htmx is vendored, nothing is inlined.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'; object-src 'none'"
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = getattr(settings, "CONTENT_SECURITY_POLICY", CSP)

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", self.policy)
        return response


class DatabaseUnavailableMiddleware:
    """A view (or its template) that finds PostgreSQL down answers 503 with the branded page,
    also under DEBUG (where Django would show its traceback page). Errors raised outside views
    reach handler500 (portal.web.views.server_error), which answers the same."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from portal.web.views import DATABASE_UNAVAILABLE, database_unavailable

        if isinstance(exception, DATABASE_UNAVAILABLE):
            logger.warning(
                "database unavailable on %s %s: %s", request.method, request.path, exception
            )
            return database_unavailable(request)
        return None
