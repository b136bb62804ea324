"""Settings every HTTP driver reads the same way: per-call time-out, retries and backoff."""

from typing import Any


def transport_options(settings: Any) -> dict[str, Any]:
    timeout = getattr(settings, "PROVISIONING_TIMEOUT", 10.0)
    return {
        "timeout": tuple(timeout) if isinstance(timeout, list | tuple) else float(timeout),
        "retries": int(getattr(settings, "PROVISIONING_RETRIES", 2)),
        "backoff": float(getattr(settings, "PROVISIONING_BACKOFF", 0.5)),
    }
