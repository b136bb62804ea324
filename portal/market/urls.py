from django.urls import path

from portal.market import views

app_name = "market"

urlpatterns = [
    path("pricing/", views.pricing, name="pricing"),
    path("o/<slug:org>/capacity-alerts/", views.alerts, name="alerts"),
    path("o/<slug:org>/capacity-alerts/<int:pk>/remove/", views.alert_remove, name="alert_remove"),
]
