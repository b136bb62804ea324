from django.urls import path

from portal.sshkeys import views

app_name = "sshkeys"

urlpatterns = [
    path("o/<slug:org>/ssh-keys/", views.sshkey_list, name="list"),
    path("o/<slug:org>/ssh-keys/<int:pk>/delete/", views.sshkey_delete, name="delete"),
]
