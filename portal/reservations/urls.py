from django.urls import path

from portal.reservations import views

app_name = "reservations"

urlpatterns = [
    path("o/<slug:org>/reservations/", views.reservation_list, name="list"),
    path(
        "o/<slug:org>/reservations/requests/<int:pk>/", views.request_detail, name="request_detail"
    ),
    path(
        "o/<slug:org>/reservations/requests/<int:pk>/<str:answer>/",
        views.request_answer,
        name="request_answer",
    ),
]
