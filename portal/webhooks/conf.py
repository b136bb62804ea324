"""Tunables of webhook delivery, read from Django settings with these defaults."""

from django.conf import settings

from portal.lib import safehttp

DEFAULTS = {
    # Attempts per delivery, waiting base * 2**n seconds (capped) between them, like Stripe's
    # retries over hours: 30 s, 1 min, 2 min, … up to 1 h; 10 attempts span about 4 hours.
    "WEBHOOK_MAX_ATTEMPTS": 10,
    "WEBHOOK_RETRY_BASE": 30.0,
    "WEBHOOK_RETRY_MAX": 3600.0,
    # Seconds to connect and to wait for the answer.
    "WEBHOOK_TIMEOUT": (5.0, 10.0),
    "WEBHOOK_ENDPOINTS_PER_ORGANIZATION": 20,
}


def setting(name: str):
    return getattr(settings, name, DEFAULTS[name])


def allowed_networks():
    """OUTBOUND_ALLOWED_NETWORKS (base settings: none): the only non-public addresses a
    customer's URL may reach, and the only ones plain http may go to (see portal.lib.safehttp)."""
    return safehttp.networks(getattr(settings, "OUTBOUND_ALLOWED_NETWORKS", ()))
