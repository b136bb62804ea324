"""Under /api/: refuse huge bodies unread, and give responses made outside DRF the error shape.

DRF shapes what its views raise (portal/api/errors.py). What happens before a view is found
(no such URL), or a crash a view did not expect, would otherwise be one of Django's HTML pages.
"""

from django.urls import Resolver404, resolve

from portal.api.conf import setting
from portal.api.errors import error_json_response

PREFIX = "/api/"

_GENERIC = {
    400: ("bad_request", "The request could not be understood."),
    403: ("forbidden", "You may not do this."),
    404: ("not_found", "There is no such URL in the API. The list is at /api/v1/docs/."),
    405: ("method_not_allowed", "This method is not allowed here."),
    413: ("body_too_large", "The request body is too large."),
    503: (
        "unavailable",
        "Backfill is briefly unavailable (its database does not answer). Try again in a "
        "minute; see Retry-After.",
    ),
}


def _add_missing_slash(request) -> None:
    """/api/v1/instances is /api/v1/instances/: answered, not redirected (a 301 would make
    most clients resend a POST as a GET, and DEBUG's APPEND_SLASH refuses POSTs with a 500)."""
    if request.path_info.endswith("/"):
        return
    try:
        resolve(request.path_info)
    except Resolver404:
        try:
            resolve(request.path_info + "/")
        except Resolver404:
            return
        request.path_info += "/"


class ApiMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(PREFIX):
            return self.get_response(request)
        limit = setting("API_MAX_BODY_BYTES")
        length = request.META.get("CONTENT_LENGTH") or "0"
        if not (length.isascii() and length.isdigit()):  # "²".isdigit(), int("١٢") == 12
            return error_json_response(400, "bad_request", "The Content-Length header is invalid.")
        if int(length) > limit:
            return error_json_response(
                413,
                "body_too_large",
                f"The request body has {int(length)} bytes; the API accepts at most {limit}.",
                details={"max_bytes": limit},
            )
        _add_missing_slash(request)
        response = self.get_response(request)
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith(
            "application/json"
        ):
            code, message = _GENERIC.get(
                response.status_code,
                ("server_error", "Something went wrong on our side. It has been logged."),
            )
            if response.status_code < 500 and response.status_code not in _GENERIC:
                code, message = "error", response.reason_phrase
            shaped = error_json_response(response.status_code, code, message)
            for header in ("Allow", "Retry-After", "WWW-Authenticate"):
                if header in response:
                    shaped[header] = response[header]
            return shaped
        return response
