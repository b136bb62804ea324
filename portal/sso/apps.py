from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "portal.sso"
    label = "sso"
    verbose_name = "Single sign-on"

    def ready(self) -> None:
        from portal.sso import receivers  # noqa: F401  connects them
