from django.urls import path

from portal.audit import views

app_name = "audit"

urlpatterns = [
    path("o/<slug:org>/audit/", views.audit_list, name="list"),
]
