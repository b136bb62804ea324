from allauth.account.decorators import secure_admin_login
from django.conf import settings
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from portal.dashboard import views as dashboard_views
from portal.notifications import views as notifications_views
from portal.operations import admin as operations_admin
from portal.orgs import views as orgs_views
from portal.runtime import metrics as runtime_metrics
from portal.sso import views as sso_views

admin.autodiscover()
# allauth's way to put its login (and second factor) in front of the admin's.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]
admin.site.site_header = "Backfill operator console"
admin.site.site_title = "Backfill admin"
admin.site.index_title = "Operations"

# Branded error pages (templates/403.html and 404.html render with the console's layout).
handler400 = "portal.web.views.bad_request"
handler500 = "portal.web.views.server_error"


class FaviconRedirect(RedirectView):
    """/favicon.ico → the hashed static file. Resolved per request, never at import: the
    manifest does not exist before collectstatic, and `manage.py check --deploy` imports
    this module (it crashed there)."""

    permanent = True

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("img/favicon.svg")


urlpatterns = [
    path("", dashboard_views.home, name="home"),
    path("healthz", dashboard_views.healthz, name="healthz"),
    path("readyz", dashboard_views.readyz, name="readyz"),
    path("metrics", runtime_metrics.metrics_view, name="metrics"),
    path("favicon.ico", FaviconRedirect.as_view(), name="favicon"),
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
    path("", include("portal.accounts.urls")),
    # allauth's sign-up, which fills in and fixes the address of someone holding an invitation.
    path("accounts/signup/", orgs_views.signup, name="account_signup"),
    path("accounts/", include("allauth.urls")),
    path(
        "admin/overview/",
        admin.site.admin_view(operations_admin.overview_view),
        name="operations_overview",
    ),
    path(
        "admin/customers/",
        admin.site.admin_view(operations_admin.customer_search_view),
        name="operations_customers",
    ),
    path(
        "admin/customers/<int:organization_id>/",
        admin.site.admin_view(operations_admin.customer_view),
        name="operations_customer",
    ),
    path("admin/", admin.site.urls),
    path("", include("portal.orgs.urls")),
    path("", include("portal.catalog.urls")),
    path("", include("portal.market.urls")),
    path("", include("portal.quotas.urls")),
    path("", include("portal.sshkeys.urls")),
    path("", include("portal.instances.urls")),
    path("", include("portal.clusters.urls")),
    path("", include("portal.volumes.urls")),
    path("", include("portal.billing.urls")),
    path("", include("portal.api.urls")),
    path("", include("portal.webhooks.urls")),
    path("", include("portal.reservations.urls")),
]
if getattr(settings, "BENCH_FLOOR_VIEWS", False):  # `make bench` only (bench/settings.py)
    urlpatterns.append(path("bench/", include("bench.urls")))
