"""Production settings for the outage tests' processes, with the waits scaled from minutes to
seconds: reconciliation re-drives work stuck for 15 s (production: 120 s), the outbox tries
again at least every 10 s (60 s), a dead worker's messages come back after 10 s (30 s)."""

from portal.settings.production import *  # noqa: F403
from portal.settings.production import CELERY_BROKER_TRANSPORT_OPTIONS

INSTANCE_STALE_AFTER = 15
INSTANCE_POLL_INTERVAL = 1.0
INSTANCE_RETRY_BASE = 0.5
INSTANCE_RETRY_MAX = 5.0
NOTIFICATION_RETRY_MAX = 10
CELERY_VISIBILITY_TIMEOUT = 10
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
