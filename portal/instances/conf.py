"""Tunables of the instance machinery, read from Django settings with these defaults."""

from django.conf import settings

DEFAULTS = {
    # Seconds between two looks at a machine that is changing state.
    "INSTANCE_POLL_INTERVAL": 2.0,
    # Task retries on transient backend errors, waiting base * 2**n seconds (capped) between.
    "INSTANCE_TASK_MAX_RETRIES": 6,
    "INSTANCE_RETRY_BASE": 2.0,
    "INSTANCE_RETRY_MAX": 120.0,
    # A machine still provisioning after this many seconds is given up (failed, terminated).
    "INSTANCE_SETTLE_TIMEOUT": 900,
    # Reconciliation re-enqueues the task of an instance in transition for longer than this.
    "INSTANCE_STALE_AFTER": 120,
    # A capacity snapshot older than this is not trusted for refusing launches.
    "INSTANCE_CAPACITY_MAX_AGE": 300,
    "INSTANCES_PER_PAGE": 25,
}


def setting(name: str):
    return getattr(settings, name, DEFAULTS[name])
