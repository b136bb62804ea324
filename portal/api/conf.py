"""Tunables of the REST API, read from Django settings with these defaults."""

from django.conf import settings

DEFAULTS = {
    # Requests per token. Every request counts against API_RATE; writes also against
    # API_WRITE_RATE. DRF's "<n>/<second|minute|hour|day>" notation.
    "API_RATE": "600/minute",
    "API_WRITE_RATE": "60/minute",
    # Largest request body the API reads, in bytes; larger ones are answered 413 unread.
    "API_MAX_BODY_BYTES": 64 * 1024,
    # How long a launch's Idempotency-Key is remembered, in seconds (Stripe: 24 h).
    "API_IDEMPOTENCY_TTL": 24 * 3600,
    # A key's claim not finished within this many seconds was left behind by a process that
    # died: a retry with the key takes it over (and gets the instance already made).
    "API_IDEMPOTENCY_LEASE": 30,
    "API_PAGE_SIZE": 25,
    "API_MAX_PAGE_SIZE": 100,
    # last_used_at is written at most this often per token, in seconds.
    "API_LAST_USED_RESOLUTION": 60,
}


def setting(name: str):
    return getattr(settings, name, DEFAULTS[name])
