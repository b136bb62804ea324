from django.urls import path

from portal.webhooks import views

app_name = "webhooks"

urlpatterns = [
    path("o/<slug:org>/webhooks/", views.endpoint_list, name="list"),
    path("o/<slug:org>/webhooks/<int:pk>/", views.endpoint_detail, name="detail"),
    path("o/<slug:org>/webhooks/<int:pk>/edit/", views.endpoint_edit, name="edit"),
    path("o/<slug:org>/webhooks/<int:pk>/test/", views.endpoint_test, name="test"),
    path("o/<slug:org>/webhooks/<int:pk>/roll-secret/", views.endpoint_roll_secret, name="roll"),
    path("o/<slug:org>/webhooks/<int:pk>/delete/", views.endpoint_delete, name="delete"),
]
