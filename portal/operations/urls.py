from django.urls import path

from portal.operations import views

app_name = "operations"

urlpatterns = [
    path("o/<slug:org>/reservations/", views.reservations, name="reservations"),
    path(
        "o/<slug:org>/reservations/requests/<int:pk>/", views.request_detail, name="request_detail"
    ),
    path(
        "o/<slug:org>/reservations/requests/<int:pk>/<str:answer>/",
        views.request_answer,
        name="request_answer",
    ),
]
