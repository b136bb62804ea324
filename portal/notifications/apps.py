from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class NotificationsConfig(AppConfig):
    name = "portal.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # Every app's `emails` module registers its e-mail kinds (like admin.autodiscover).
        autodiscover_modules("emails")
