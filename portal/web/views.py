"""Error pages of the site (not of the API, whose errors have their JSON shape)."""

import sys

from django.conf import settings
from django.core.exceptions import BadRequest
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.shortcuts import render
from django.template import loader
from django.views.decorators.csrf import requires_csrf_token

GENERIC_400 = "The request could not be understood. Check the address and try again."

# What psycopg raises (through Django) when PostgreSQL does not answer, restarts or drops the
# connection: the request may well succeed in a minute; it is not a bug of the page.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 30


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler400: a view's BadRequest says what was wrong; anything else says nothing more
    (a SuspiciousOperation's text is for the log, not for whoever sent it)."""
    message = str(exception) if type(exception) is BadRequest and str(exception) else GENERIC_400
    return render(request, "400.html", {"message": message}, status=400)


def _plain_context() -> dict[str, str]:
    return {
        "site_name": settings.SITE_NAME,
        "support_email": getattr(settings, "SUPPORT_EMAIL", ""),
    }


def database_unavailable(request: HttpRequest | None = None) -> HttpResponse:
    """503 with the branded "back in a moment" page, rendered without the request's context
    processors (they would ask the database that is gone). Under /api/ the API's middleware
    gives it the error shape."""
    template = loader.get_template("503.html")
    response = HttpResponse(template.render(_plain_context()), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


@requires_csrf_token
def server_error(request: HttpRequest) -> HttpResponse:
    """The branded 500 page, rendered without the request's context processors: the database,
    the session or the cache may be what failed, and the error page must not fail too. When
    the database is what failed (down, restarting), a 503 that says to try again shortly.
    """
    if isinstance(sys.exc_info()[1], DATABASE_UNAVAILABLE):
        return database_unavailable(request)
    template = loader.get_template("500.html")
    return HttpResponseServerError(template.render(_plain_context()))
