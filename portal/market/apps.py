from django.apps import AppConfig


class MarketConfig(AppConfig):
    name = "portal.market"
    label = "market"
    verbose_name = "Spot market"

    def ready(self) -> None:
        from portal.market import emails, receivers  # noqa: F401
