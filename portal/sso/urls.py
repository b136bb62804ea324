from django.urls import path

from portal.sso import views

app_name = "sso"

urlpatterns = [
    path("accounts/sso/", views.sso_start, name="start"),
    path("o/<slug:org>/sso/", views.sso_settings, name="configure"),
    path("o/<slug:org>/sso/remove/", views.identity_provider_remove, name="remove"),
    path(
        "o/<slug:org>/sso/domains/<int:pk>/remove/",
        views.domain_claim_remove,
        name="domain_remove",
    ),
]
