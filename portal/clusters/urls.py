from django.urls import path

from portal.clusters import views

app_name = "clusters"

urlpatterns = [
    path("o/<slug:org>/clusters/", views.cluster_list, name="list"),
    path("o/<slug:org>/clusters/launch/", views.cluster_launch, name="launch"),
    path("o/<slug:org>/clusters/<int:pk>/", views.cluster_detail, name="detail"),
    path("o/<slug:org>/clusters/<int:pk>/<str:action>/", views.cluster_action, name="action"),
]
