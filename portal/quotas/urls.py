from django.urls import path

from portal.quotas import views

app_name = "quotas"

urlpatterns = [
    path("o/<slug:org>/quotas/", views.quotas, name="quotas"),
    path("o/<slug:org>/quotas/requests/new/", views.quota_request_new, name="quota_request_new"),
    path(
        "o/<slug:org>/quotas/requests/<int:pk>/",
        views.quota_request_detail,
        name="quota_request_detail",
    ),
    path(
        "o/<slug:org>/quotas/requests/<int:pk>/answer/",
        views.quota_request_answer,
        name="quota_request_answer",
    ),
    path(
        "o/<slug:org>/quotas/requests/<int:pk>/withdraw/",
        views.quota_request_withdraw,
        name="quota_request_withdraw",
    ),
]
