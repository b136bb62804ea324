from django.apps import AppConfig


class QuotasConfig(AppConfig):
    name = "portal.quotas"
    label = "quotas"
    verbose_name = "Quotas"

    def ready(self) -> None:
        from portal.quotas import receivers  # noqa: F401  connects them
