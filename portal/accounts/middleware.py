"""Pages in the signed-in person's time zone (their setting; UTC until they have one)."""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.utils import timezone


class TimeZoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        name = ""
        # Without a session cookie nobody is signed in: no session or user query; probes and
        # metrics never look (a liveness probe must answer without the database).
        if settings.SESSION_COOKIE_NAME in request.COOKIES and not request.path.startswith(
            ("/healthz", "/readyz", "/metrics")
        ):
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                name = getattr(user, "time_zone", "")
        try:
            timezone.activate(ZoneInfo(name)) if name else timezone.deactivate()
        except (ZoneInfoNotFoundError, ValueError):
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
