from django.urls import path

from portal.instances import views

app_name = "instances"

urlpatterns = [
    path("o/<slug:org>/instances/", views.instance_list, name="list"),
    path("o/<slug:org>/instances/launch/", views.instance_launch, name="launch"),
    path("o/<slug:org>/instances/<int:pk>/", views.instance_detail, name="detail"),
    path(
        "o/<slug:org>/instances/<int:pk>/max-price/",
        views.instance_max_price,
        name="max_price",
    ),
    path(
        "o/<slug:org>/instances/<int:pk>/<str:action>/",
        views.instance_action,
        name="action",
    ),
]
