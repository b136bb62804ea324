from django.urls import include, path

from portal.api import views

app_name = "api"

urlpatterns = [
    path("api/v1/", include("portal.api.v1.urls")),
    path("o/<slug:org>/api/", views.api_page, name="page"),
    path("o/<slug:org>/api/tokens/<int:pk>/revoke/", views.api_token_revoke, name="token_revoke"),
]
