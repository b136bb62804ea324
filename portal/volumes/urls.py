from django.urls import path

from portal.volumes import views

app_name = "volumes"

urlpatterns = [
    path("o/<slug:org>/volumes/", views.volume_list, name="list"),
    path("o/<slug:org>/volumes/new/", views.volume_create, name="create"),
    path("o/<slug:org>/volumes/<int:pk>/", views.volume_detail, name="detail"),
    path("o/<slug:org>/volumes/<int:pk>/delete/", views.volume_delete, name="delete"),
]
