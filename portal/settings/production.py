"""Production: every secret comes from the environment; `manage.py check --deploy` is clean.

A missing required variable stops the process before it starts, with one line naming it
(portal/settings/required.py). Logs are JSON lines unless LOG_FORMAT says otherwise.
"""

from portal.lib import logs
from portal.lib.env import env_bool, env_int, env_str

from .required import refuse_to_start_unless_configured

refuse_to_start_unless_configured()

from .base import *  # noqa: E402, F403
from .base import LOG_LEVEL  # noqa: E402

DEBUG = False
SECRET_KEY = env_str("DJANGO_SECRET_KEY")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
# Probes and Prometheus reach the processes directly over http inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"

LOG_FORMAT = env_str("LOG_FORMAT", "json")
LOGGING = logs.logging_config(LOG_FORMAT, LOG_LEVEL)
SENTRY_ENVIRONMENT = env_str("SENTRY_ENVIRONMENT", "production")
