"""Celery workers' heartbeats in Redis: written by portal.runtime.worker every few seconds,
read by /readyz ("a worker seen recently"). No Django here."""

from __future__ import annotations

import time

import redis

HEARTBEAT_KEY = "backfill:worker-seen:"
HEARTBEAT_TTL = 120


def beat(client: redis.Redis, hostname: str, now: float | None = None) -> None:
    client.set(HEARTBEAT_KEY + hostname, f"{now or time.time():.3f}", ex=HEARTBEAT_TTL)


def workers_seen(url: str, within: float) -> list[str]:
    """Workers whose heartbeat is younger than `within` seconds."""
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        now = time.time()
        seen = []
        for key in client.scan_iter(match=HEARTBEAT_KEY + "*", count=100):
            try:
                at = float(client.get(key) or 0)
            except ValueError:
                continue
            if now - at <= within:
                seen.append(key.decode()[len(HEARTBEAT_KEY) :])
        return sorted(seen)
    finally:
        client.close()
