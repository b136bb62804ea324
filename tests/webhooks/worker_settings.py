"""The real Celery worker of test_worker.py: the instances tests' worker settings, with
webhook retries a fifth of a second apart (base 0.2 s, doubling)."""

from tests.instances.worker_settings import *  # noqa: F403

WEBHOOK_RETRY_BASE = 0.2
WEBHOOK_TIMEOUT = (2.0, 5.0)
OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the test's receiver
