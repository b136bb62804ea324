from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "portal.orgs"
    label = "orgs"
    verbose_name = "Organizations"

    def ready(self) -> None:
        from portal.orgs import signup  # noqa: F401  connects sign-up's first organization
