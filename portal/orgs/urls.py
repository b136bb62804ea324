from django.urls import path

from portal.orgs import views

app_name = "orgs"

urlpatterns = [
    path("orgs/new/", views.organization_create, name="create"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("o/<slug:org>/settings/", views.organization_settings, name="settings"),
    path("o/<slug:org>/settings/two-factor/", views.organization_two_factor, name="two_factor"),
    path("o/<slug:org>/leave/", views.organization_leave, name="leave"),
    path("o/<slug:org>/members/", views.member_list, name="members"),
    path("o/<slug:org>/audit/", views.audit_log, name="audit"),
    path("o/<slug:org>/audit.csv", views.audit_log_csv, name="audit_csv"),
    path("o/<slug:org>/members/invite/", views.invitation_create, name="invite"),
    path("o/<slug:org>/members/<int:pk>/role/", views.member_change_role, name="member_role"),
    path("o/<slug:org>/members/<int:pk>/remove/", views.member_remove, name="member_remove"),
    path(
        "o/<slug:org>/invitations/<int:pk>/resend/",
        views.invitation_resend,
        name="invitation_resend",
    ),
    path(
        "o/<slug:org>/invitations/<int:pk>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
]
