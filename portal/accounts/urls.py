from django.urls import path

from portal.accounts import views

urlpatterns = [
    path("account/notifications/", views.notification_settings, name="account_notifications"),
    path("account/time-zone/", views.time_zone_detect, name="account_time_zone"),
    path(
        "accounts/verification/resend/",
        views.verification_resend,
        name="account_verification_resend",
    ),
]
