"""Signatures of webhook deliveries, the way Stripe signs them. No Django here.

    Backfill-Signature: t=1767225600,v1=5257a869e7ec…(64 hex digits)

`v1` is the hex HMAC-SHA256, keyed with the endpoint's secret, of `f"{t}.{body}"` where body is
the exact bytes of the request body. A receiver recomputes it, compares in constant time, and
refuses a `t` too far from its own clock, so that a captured delivery cannot be replayed later.
This module is what a receiver written in Python needs; the docs page shows the same steps.
"""

import hashlib
import hmac
import time

HEADER = "Backfill-Signature"
DEFAULT_TOLERANCE = 300  # seconds


class SignatureError(ValueError):
    pass


def compute(secret: str, body: bytes, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value for `body` signed now (or at `timestamp`)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={compute(secret, body, t)}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Check a signature header; return its timestamp or raise SignatureError.

    Several `v1=` entries are accepted (one matching is enough), as during a secret roll.
    """
    timestamp, signatures = None, []
    for item in (header or "").split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError("The signature header has no timestamp or no v1 signature.")
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise SignatureError("The timestamp is outside the tolerance: a replay or a slow clock.")
    expected = compute(secret, body, timestamp)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureError("No signature matches the body.")
    return timestamp
