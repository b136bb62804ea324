from allauth.account.decorators import secure_admin_login
from django.conf import settings
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from portal.dashboard import views as dashboard_views
from portal.notifications import views as notifications_views
from portal.operations import admin as operations_admin
from portal.runtime import metrics as runtime_metrics
from portal.sso import views as sso_views

admin.autodiscover()
# allauth's way to put its login (and second factor) in front of the admin's.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]
admin.site.site_header = "Backfill operator console"
admin.site.site_title = "Backfill admin"
admin.site.index_title = "Operations"

urlpatterns = [
    path("", dashboard_views.home, name="home"),
    path("healthz", dashboard_views.healthz, name="healthz"),
    path("readyz", dashboard_views.readyz, name="readyz"),
    path("metrics", runtime_metrics.metrics_view, name="metrics"),
    path("favicon.ico", RedirectView.as_view(url=static("img/favicon.svg"), permanent=True)),
    path("dashboard/", dashboard_views.dashboard, name="dashboard"),
    path("o/<slug:org>/", dashboard_views.organization_dashboard, name="dashboard_org"),
    path("staff/mail/", notifications_views.mail_sink, name="mail_sink"),
    # allauth's OpenID Connect callback, with the strict ID token checks of portal/sso.
    path(
        "accounts/oidc/<str:provider_id>/login/callback/",
        sso_views.oidc_callback,
        name="sso_oidc_callback",
    ),
    path("", include("portal.sso.urls")),
    path("accounts/", include("allauth.urls")),
    path(
        "admin/overview/",
        admin.site.admin_view(operations_admin.overview_view),
        name="operations_overview",
    ),
    path("admin/", admin.site.urls),
    path("", include("portal.orgs.urls")),
    path("", include("portal.catalog.urls")),
    path("", include("portal.quotas.urls")),
    path("", include("portal.sshkeys.urls")),
    path("", include("portal.instances.urls")),
    path("", include("portal.billing.urls")),
    path("", include("portal.api.urls")),
    path("", include("portal.webhooks.urls")),
    path("", include("portal.reservations.urls")),
]
if getattr(settings, "BENCH_FLOOR_VIEWS", False):  # `make bench` only (bench/settings.py)
    urlpatterns.append(path("bench/", include("bench.urls")))
