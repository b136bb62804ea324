"""Tunables of webhook delivery, read from Django settings with these defaults."""

from django.conf import settings

DEFAULTS = {
    # Plain http:// to 127.0.0.1, ::1 or localhost (a receiver on the developer's machine).
    # True in portal/settings/dev.py and test.py; never in production.
    "WEBHOOKS_ALLOW_HTTP_LOCALHOST": False,
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
