from django.apps import AppConfig


class ReclaimsConfig(AppConfig):
    name = "portal.reclaims"
    label = "reclaims"
    verbose_name = "Reclaims"

    def ready(self) -> None:
        from portal.reclaims import receivers  # noqa: F401
