"""The two floors of the page benchmark; included by portal/urls.py only when
settings.BENCH_FLOOR_VIEWS is on (bench/settings.py)."""

from django.urls import path

from bench import views

urlpatterns = [
    path("floor/", views.floor, name="bench_floor"),
    path("constant/", views.constant, name="bench_constant"),
]
