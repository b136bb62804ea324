from django.apps import AppConfig


class InstancesConfig(AppConfig):
    name = "portal.instances"
    label = "instances"
    verbose_name = "Instances"

    def ready(self) -> None:
        from portal.catalog.insights import offer_note_register
        from portal.instances import receivers  # noqa: F401  connects them
        from portal.instances.interruptions import catalog_interruption_notes

        offer_note_register(catalog_interruption_notes)
