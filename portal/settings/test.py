"""Tests: PostgreSQL and Redis over real connections, fast hashing, mail in memory.

E-mail that must cross a real SMTP hop (browser tests) switches the backend in its fixture.
"""

import os

from portal.lib.env import env_str

from .base import *  # noqa: F403
from .base import CACHES, DATABASES, POSTGRES_OPTIONS

DEBUG = False
DATABASES["default"] = {
    "ENGINE": "django_prometheus.db.backends.postgresql",  # as in production
    "NAME": env_str("TEST_DB_NAME", "backfill"),
    "USER": env_str("TEST_DB_USER", "postgres"),
    "HOST": env_str("TEST_DB_HOST", "127.0.0.1"),
    "PORT": env_str("TEST_DB_PORT", "5432"),
    "TEST": {"NAME": env_str("TEST_DB_TEST_NAME", "test_backfill")},
    "OPTIONS": POSTGRES_OPTIONS,  # as in production
}
REDIS_URL = env_str("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CACHES["default"]["LOCATION"] = REDIS_URL
CACHES["default"]["KEY_PREFIX"] = f"backfill-test-{os.getpid()}"
CELERY_BROKER_URL = REDIS_URL
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
SITE_URL = "http://testserver"
ALLOWED_HOSTS = ["*"]
STATIC_ROOT = None  # static files come from the finders; nothing is collected in tests
# Invitation rate limits out of the way of tests that invite many (schemathesis); the limits'
# own tests (tests/orgs/test_invitation_limits.py) set theirs.
INVITATIONS_PER_ORGANIZATION_PER_HOUR = 10_000
INVITATIONS_PER_USER_PER_HOUR = 10_000
