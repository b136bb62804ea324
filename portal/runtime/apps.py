from django.apps import AppConfig


class RuntimeConfig(AppConfig):
    """How the portal runs on its hosts: proxy headers, request ids and structured logs,
    Prometheus metrics, the Celery worker's heartbeat and task leases, production checks."""

    name = "portal.runtime"
    label = "runtime"

    def ready(self) -> None:
        from django.conf import settings

        from portal.runtime import celery_hooks  # noqa: F401 - connects the Celery signals

        if settings.SENTRY_DSN:
            from portal.runtime.sentry import init_sentry

            init_sentry(settings.SENTRY_DSN, environment=settings.SENTRY_ENVIRONMENT)
