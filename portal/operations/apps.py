from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "portal.operations"
    label = "operations"
    verbose_name = "Operations"

    def ready(self) -> None:
        from portal.operations import receivers  # noqa: F401
