from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "portal.clusters"
    label = "clusters"
    verbose_name = "Clusters"

    def ready(self) -> None:
        from portal.clusters import emails, receivers  # noqa: F401  connects them
