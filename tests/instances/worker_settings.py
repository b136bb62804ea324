"""Settings of the real Celery worker that the worker and browser tests start.

portal.settings.test plus what a separate process needs to take from its environment: the
test database's name (TEST_DB_NAME, set by the fixture), an SMTP backend towards the browser
tests' sink, the live server's URL for links in e-mails, production's Redis visibility timeout
(or a shorter one a test asks for) looked for every second, and, when a
test asks, production's persistent database connections (TEST_WORKER_CONN_MAX_AGE).
"""

from portal.lib.env import env_int, env_str
from portal.settings.test import *  # noqa: F403
from portal.settings.test import CELERY_VISIBILITY_TIMEOUT, DATABASES, EMAIL_BACKEND, SITE_URL

EMAIL_BACKEND = env_str("TEST_WORKER_EMAIL_BACKEND", EMAIL_BACKEND)
SITE_URL = env_str("TEST_WORKER_SITE_URL", SITE_URL)
CELERY_VISIBILITY_TIMEOUT = env_int("TEST_WORKER_VISIBILITY_TIMEOUT", CELERY_VISIBILITY_TIMEOUT)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    # Look for unacknowledged messages to restore every second, not every 100 s.
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
INSTANCE_POLL_INTERVAL = float(env_str("TEST_WORKER_POLL_INTERVAL", "1"))
INSTANCE_RETRY_BASE = float(env_str("TEST_WORKER_RETRY_BASE", "0.5"))
PROVISIONING_TIMEOUT = float(env_str("PROVISIONING_TIMEOUT", "10"))
# As in production (DATABASE_CONN_MAX_AGE, 60 s) when a test asks; else one connection a task.
DATABASES["default"]["CONN_MAX_AGE"] = env_int("TEST_WORKER_CONN_MAX_AGE", 0)
# The outbox's longest wait between two tries (tests/notifications: seconds, not a minute).
NOTIFICATION_RETRY_MAX = float(env_str("TEST_WORKER_NOTIFICATION_RETRY_MAX", "60"))
