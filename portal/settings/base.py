"""Settings shared by every environment. Everything that differs comes from the environment.

See the README for the list of variables.
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from portal.lib import logs
from portal.lib.env import env_bool, env_decimal, env_int, env_list, env_str
from portal.web.db import PreparingCursor

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("BACKFILL_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "dev-insecure-key-change-me-in-production")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
SITE_NAME = "Backfill"

INSTALLED_APPS = [
    "portal.web.apps.PortalAdminConfig",  # django.contrib.admin, the portal's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "django_prometheus",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Backfill's apps, lowest layer first (README, "Architecture"; import-linter keeps it so).
    "portal.web",
    "portal.notifications",
    "portal.accounts",
    "portal.audit",
    "portal.orgs",
    "portal.sso",
    "portal.catalog",
    "portal.capacity",
    "portal.sshkeys",
    "portal.quotas",
    "portal.reservations",
    "portal.volumes",
    "portal.market",
    "portal.instances",
    "portal.clusters",
    "portal.reclaims",
    "portal.billing",
    "portal.operations",
    "portal.webhooks",
    "portal.dashboard",
    "portal.api",
    "portal.demo",
    "portal.runtime",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "portal.runtime.middleware.TrustedProxyMiddleware",
    "portal.runtime.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.api.middleware.ApiMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "portal.orgs.middleware.TwoFactorRequiredMiddleware",
    "portal.accounts.middleware.TimeZoneMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "portal.web.middleware.ContentSecurityPolicyMiddleware",
    "portal.audit.middleware.AuditRequestMiddleware",
    "portal.web.middleware.DatabaseUnavailableMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.orgs.context_processors.current_organization",
                "portal.web.context_processors.site",
            ],
        },
    },
    {
        # Plain text (e-mail subjects and bodies): nothing is HTML-escaped.
        "NAME": "text",
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {"autoescape": False},
    },
]

# Without DATABASE_URL the portal runs on SQLite, a convenience for `make run` only;
# the tests always run on PostgreSQL (see portal/settings/test.py).
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'backfill.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
# PostgreSQL plans a query each time it gets one as text. With server-side binding, psycopg
# prepares a query run more than DATABASE_PREPARE_THRESHOLD times on a connection, and
# PostgreSQL then plans it once per connection: about half of its CPU on a console page (the
# instance detail's read took 2 ms to plan and 0.8 ms to run). "off" for a pooler in
# transaction mode that cannot keep prepared statements (PgBouncer before 1.21).
_prepare_threshold = (env_str("DATABASE_PREPARE_THRESHOLD") or "2").strip().lower()
if _prepare_threshold != "off" and not _prepare_threshold.isdigit():
    raise ImproperlyConfigured(
        f"DATABASE_PREPARE_THRESHOLD is {_prepare_threshold!r}: a number of runs (2) or off"
    )
POSTGRES_OPTIONS: dict[str, object] = (
    {}
    if _prepare_threshold == "off"
    else {
        "server_side_binding": True,
        "cursor_factory": PreparingCursor,  # a search is planned for its pattern each time
        "prepare_threshold": int(_prepare_threshold),
    }
)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["OPTIONS"] = {
        **POSTGRES_OPTIONS,
        **DATABASES["default"].get("OPTIONS", {}),
    }
# django-prometheus' wrappers of the same backends: queries, errors and connections counted.
DATABASES["default"]["ENGINE"] = {
    "django.db.backends.postgresql": "django_prometheus.db.backends.postgresql",
    "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
}.get(DATABASES["default"]["ENGINE"], DATABASES["default"]["ENGINE"])
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        # Django's RedisCache answering as an empty cache while Redis is unreachable, so that a
        # Redis restart costs a few cache misses, not a 500 on every page.
        "BACKEND": "portal.web.cache.ResilientRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "backfill"),
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 5},
    }
}

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"

# django-allauth: e-mail is the login, verification is mandatory, rate limits on (allauth defaults).
ACCOUNT_ADAPTER = "portal.accounts.adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_SIGNUP_FORM_CLASS = "portal.orgs.signup.SignupForm"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_EMAIL_NOTIFICATIONS = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Backfill] "
# Sign-up, password reset and adding an e-mail answer the same whether an address is
# registered; the owner of a registered address gets a mail instead ("you already have an
# account", "no account uses this address"), through the outbox like every allauth mail.
ACCOUNT_PREVENT_ENUMERATION = True
# Invitations and resends (mails to people outside) per organization and per person, per hour.
INVITATIONS_PER_ORGANIZATION_PER_HOUR = env_int("INVITATIONS_PER_ORGANIZATION_PER_HOUR", 20)
INVITATIONS_PER_USER_PER_HOUR = env_int("INVITATIONS_PER_USER_PER_HOUR", 10)
# ACCOUNT_RATE_LIMITS is left unset on purpose: allauth's defaults limit login, failed login,
# signup, password reset and e-mail confirmation; they need the shared (Redis) cache.
# Single sign-on (portal/sso): one allauth OpenID Connect app per organization, made by its
# owner; a sign-in is accepted only with a verified e-mail of a verified domain, and then joins
# the organization (portal/sso/adapter.py). Accounts come from the provider, not a form.
SOCIALACCOUNT_ADAPTER = "portal.sso.adapter.SocialAccountAdapter"
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_REQUESTS_TIMEOUT = 10
# An issuer must be https on the public internet; only the tests' provider (http on this
# machine) is let through, by the test fixture that starts it.
SSO_ALLOW_INSECURE_ISSUERS = False
SSO_DISCOVERY_TIMEOUT = 5
# URLs customers give (webhook endpoints, an SSO issuer) reach public internet addresses only,
# in every settings module: never loopback, private, link-local, reserved or multicast ones
# (portal/lib/safehttp.py). This explicit allow-list (CIDRs, e.g. "127.0.0.1/32") is the only
# exception, and the only place plain http may go: tests with a local receiver set it.
OUTBOUND_ALLOWED_NETWORKS: list[str] = env_list("OUTBOUND_ALLOWED_NETWORKS")
# Two-factor: an authenticator app (TOTP) or a passkey (WebAuthn), with recovery codes; a
# passkey also signs in on its own ("Sign in with a passkey", no password).
MFA_SUPPORTED_TYPES = ["totp", "webauthn", "recovery_codes"]
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_TOTP_ISSUER = SITE_NAME

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT: Path | None = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# EMAIL_BACKEND (the variable) picks the real backend; the setting counts what it sends.
EMAIL_BACKEND = "portal.notifications.backends.MeteredEmailBackend"
EMAIL_DELIVERY_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = env_int("EMAIL_PORT", 8025)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Backfill <no-reply@backfill.localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Where the development SMTP sink (`make run`) writes messages; staff read them at /staff/mail/.
MAIL_SINK_DIR = Path(env_str("MAIL_SINK_DIR", str(VAR_DIR / "mail")))
OPERATOR_EMAIL = env_str("OPERATOR_EMAIL", "operators@backfill.localhost")
# Where customers write for help: shown in every e-mail and on the sign-up and verification pages.
SUPPORT_EMAIL = env_str("SUPPORT_EMAIL", "support@backfill.localhost")
# How long a reservation quote holds by default; how long before its end the customer is reminded.
RESERVATION_QUOTE_VALID_DAYS = env_int("RESERVATION_QUOTE_VALID_DAYS", 7)
RESERVATION_QUOTE_REMIND_HOURS = env_int("RESERVATION_QUOTE_REMIND_HOURS", 48)
QUOTA_MAX_GPUS = env_int("QUOTA_MAX_GPUS", 512)  # the highest GPU limit anyone may ask for
# The highest storage limit (GB of volumes per region) anyone may ask for.
QUOTA_MAX_STORAGE_GB = env_int("QUOTA_MAX_STORAGE_GB", 100_000)
# The shortest reclaim notice the operator allows (seconds); the policy may give more, never less.
RECLAIM_MIN_NOTICE_SECONDS = env_int("RECLAIM_MIN_NOTICE_SECONDS", 120)

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery closes every database connection around every task unless this is set; with it, the
# rule of portal/celery.py applies (Django's per-request one: CONN_MAX_AGE, health checks), and
# Celery itself closes them only every this many tasks.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
CELERY_TASK_DEFAULT_QUEUE = "backfill"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A message a worker took and did not acknowledge goes back to the queue after this many
# seconds (looked for every 5 s): the work of a dead worker resumes within ~35 s. Live workers
# renew what they hold, and a task holds a lease on its id, so nothing runs twice at once
# (portal/runtime/worker.py).
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 30)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    "unacked_restore_interval": 5,
    "unacked_restore_throttle": 1,
}
# Logs go through Django's LOGGING (structured, below), not Celery's own set-up.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Kombu's Redis transport, surviving Redis going away while a worker holds messages
# (portal/runtime/broker.py). Other brokers (a sentinel:// URL) keep kombu's own.
if CELERY_BROKER_URL.startswith("redis://"):
    CELERY_BROKER_TRANSPORT = "portal.runtime.broker:Transport"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

INVITATION_TTL_DAYS = env_int("INVITATION_TTL_DAYS", 7)
# Addresses (or networks) of our own reverse proxies: only their X-Forwarded-For/-Proto and
# X-Request-ID headers count; from anyone else those headers are dropped
# (portal.runtime.middleware). gunicorn's forwarded_allow_ips follows the same list.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES")
# /metrics: a bearer token, and/or addresses allowed without it. Neither set: /metrics is off.
# The same token and addresses (and staff) see the details of /readyz.
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS")
# /readyz wants a Celery worker heartbeat younger than this.
READY_WORKER_WITHIN = env_int("READY_WORKER_WITHIN", 60)
CURRENCY = env_str("BACKFILL_CURRENCY", "USD")
TAX_RATE = env_decimal("BACKFILL_TAX_RATE", "0")

PROVISIONING_BACKEND = env_str("PROVISIONING_BACKEND", "simulator")
SIMULATOR_URL = env_str("SIMULATOR_URL", "http://127.0.0.1:8070")
# How many machines a provisioning run asks the simulator for at once (portal.instances.sync).
SIMULATOR_CONCURRENT_CREATES = env_int("SIMULATOR_CONCURRENT_CREATES", 8)
PROVISIONING_TOKEN = env_str("PROVISIONING_TOKEN", "dev-simulator-token")
PROVISIONING_TIMEOUT = env_int("PROVISIONING_TIMEOUT", 10)

# The REST API (portal/api). Its tunables (rates, body limit, idempotency) are in
# portal/api/conf.py; webhook delivery's in portal/webhooks/conf.py.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["portal.api.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["portal.api.permissions.TokenPermission"],
    "DEFAULT_THROTTLE_CLASSES": [
        "portal.api.throttling.TokenRateThrottle",
        "portal.api.throttling.TokenWriteRateThrottle",
    ],
    "DEFAULT_PARSER_CLASSES": ["portal.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "portal.api.schema.ApiAutoSchema",
    "EXCEPTION_HANDLER": "portal.api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Backfill API",
    "DESCRIPTION": "Instances, SSH keys, quotas, the catalog and billing of one organization: "
    "the one the bearer token belongs to. Errors always have the shape "
    '`{"error": {"code": "…", "message": "…", "details": {…}}}`.',
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "InstanceState": "portal.instances.models.State",
        "QuotaRequestState": "portal.quotas.models.QuotaRequestState",
        "QuotaKind": "portal.quotas.models.Kind",
        "UsageKind": "portal.billing.models.UsageKind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.api.schema.postprocess",
    ],
}

# Prometheus' multiprocess mode (production, `make run`): every process of the host writes its
# samples under this directory and /metrics adds them up (portal/runtime/metrics.py).
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR")
if PROMETHEUS_MULTIPROC_DIR:
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)

# Structured logs (portal/lib/logs.py): readable lines in development, JSON in production.
LOG_FORMAT = env_str("LOG_FORMAT", "console")
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = logs.logging_config(LOG_FORMAT, LOG_LEVEL)
logs.configure()

# Errors to Sentry when SENTRY_DSN is set (off by default), with the logs' scrubbing of
# secrets; started by portal.runtime when Django starts (web, worker, beat, commands).
SENTRY_DSN = env_str("SENTRY_DSN")
SENTRY_ENVIRONMENT = env_str("SENTRY_ENVIRONMENT", "development")
