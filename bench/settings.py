"""Settings of `make bench`: production settings on the bench's own database and Redis database.

DEBUG off as in production, but plain HTTP on loopback (no SSL redirect, no secure-only
cookies), the `backfill_bench` PostgreSQL database (BENCH_DB_NAME), Redis database 3
(BENCH_REDIS_URL) for cache and broker, e-mail kept in memory, and the bench-only views of
bench/urls.py switched on (BENCH_FLOOR_VIEWS).
"""

import os

# A fixed key: the bench serves only 127.0.0.1 and its database is dropped on every run.
os.environ.setdefault(
    "DJANGO_SECRET_KEY", "bench-only-" + "k3y-for-a-throwaway-loopback-server-" * 2
)

# What production refuses to start without (portal/settings/required.py), set to the bench's own
# loopback services; every one is overridden below or by the runner.
_bench_db = os.environ.get("BENCH_DB_NAME", "backfill_bench")
for _name, _value in {
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{_bench_db}",
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3"),
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    "SITE_URL": "http://127.0.0.1:8600",
    "EMAIL_HOST": "127.0.0.1",
    "PROVISIONING_TOKEN": "bench-simulator-token",
}.items():
    os.environ.setdefault(_name, _value)

from portal.lib.env import env_str  # noqa: E402
from portal.settings.production import *  # noqa: E402, F403
from portal.settings.production import CACHES, LOGGING, POSTGRES_OPTIONS  # noqa: E402

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
SECURE_SSL_REDIRECT = False
SECURE_HSTS_SECONDS = 0
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": env_str("BENCH_DB_NAME", "backfill_bench"),
        "USER": env_str("BENCH_DB_USER", "postgres"),
        "HOST": env_str("BENCH_DB_HOST", "127.0.0.1"),
        "PORT": env_str("BENCH_DB_PORT", "5432"),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": POSTGRES_OPTIONS,  # as in production
    }
}
REDIS_URL = env_str("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
CACHES["default"]["LOCATION"] = REDIS_URL
CACHES["default"]["KEY_PREFIX"] = "backfill-bench"
CELERY_BROKER_URL = REDIS_URL
# The no-op task of the provisioning benchmark's baseline.
CELERY_IMPORTS = ("bench.tasks",)

# Static files are not loaded by the benchmark; no collectstatic step, no manifest.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Seeding logs thousands of users in and out of nothing; hashing speed is not measured.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SIMULATOR_URL = env_str("SIMULATOR_URL", "http://127.0.0.1:8670")
LOGGING = {**LOGGING, "root": {**LOGGING["root"], "level": env_str("LOG_LEVEL", "WARNING")}}

BENCH_FLOOR_VIEWS = True
# The provisioning section launches one cluster of 1,000 nodes (bench/provisioning.py): above the
# product's default maximum (16) and the 512 GPUs a quota may hold, within the simulator's 1,024.
CLUSTER_MAX_NODES = 1024
QUOTA_MAX_GPUS = 4096
