from django.apps import AppConfig


class CapacityConfig(AppConfig):
    name = "portal.capacity"
    label = "capacity"
    verbose_name = "Capacity"

    def ready(self) -> None:
        from portal.capacity import receivers  # noqa: F401 - connects the receivers
