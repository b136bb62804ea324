from django.apps import AppConfig


class InstancesConfig(AppConfig):
    name = "portal.instances"
    label = "instances"
    verbose_name = "Instances"

    def ready(self) -> None:
        from portal.instances import receivers  # noqa: F401  connects them
