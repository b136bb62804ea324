"""Two-factor where it is required, before any view runs.

- Staff without two-factor are sent from /admin/ to set it up (allauth's /accounts/2fa/).
- A member of an organization whose owner requires two-factor, without it, is sent there
  before anything else: every page but the account pages (where two-factor is set up, and
  sign-out). The API checks its tokens itself (portal/api/authentication.py).
"""

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse

from portal.orgs.two_factor import organization_requiring_two_factor, user_has_two_factor

# Probes and metrics answer without a session or a user (a liveness probe must not need the
# database): this middleware does not even look at who is signed in there.
PROBE_PREFIXES = ("/healthz", "/readyz", "/metrics")
# What stays open to someone who must set up two-factor first.
OPEN_PREFIXES = ("/accounts/", "/static/", "/api/", "/favicon", *PROBE_PREFIXES)


def _warn_once(request, text: str) -> None:
    """A warning not already waiting to be shown: requests redirected before the set-up page
    rendered (a second tab, a quick click) would otherwise stack the same line."""
    storage = messages.get_messages(request)  # not iterated: nothing is marked as shown
    waiting = [*getattr(storage, "_loaded_messages", []), *getattr(storage, "_queued_messages", [])]
    if not any(message.message == text for message in waiting):
        messages.warning(request, text)


class TwoFactorRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(PROBE_PREFIXES):
            return self.get_response(request)
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return self.get_response(request)
        path = request.path
        has_two_factor = None  # not asked yet
        if path.startswith("/admin/") and user.is_staff:
            has_two_factor = user_has_two_factor(user)
            if not has_two_factor:
                _warn_once(
                    request,
                    "The operator console needs two-factor authentication. Add an "
                    "authenticator app or a passkey, then open it again.",
                )
                return redirect(reverse("mfa_index"))
        # Staff found with two-factor above meet any organization's requirement.
        if has_two_factor is None and not path.startswith(OPEN_PREFIXES):
            organization = organization_requiring_two_factor(user)
            if organization is not None:
                _warn_once(
                    request,
                    f"{organization.name} requires two-factor authentication. Add an "
                    "authenticator app or a passkey to continue.",
                )
                return redirect(reverse("mfa_index"))
        return self.get_response(request)
