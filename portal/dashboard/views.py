from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from portal.accounts.http import AuthenticatedRequest
from portal.dashboard.health import readiness_report
from portal.dashboard.selectors import (
    dashboard_fleet,
    dashboard_members,
    dashboard_progress,
    dashboard_spend,
)
from portal.lib.addresses import monitoring_access
from portal.orgs.decorators import OrganizationRequest, organization_view
from portal.orgs.selectors import membership_list_for_user


@login_required
def dashboard(request: AuthenticatedRequest) -> HttpResponse:
    """Send the user to the organization they used last, or let them create one."""
    memberships = list(membership_list_for_user(user=request.user))
    if not memberships:
        if request.user.is_staff:  # the operator's staff, in no customer's organization
            return redirect("operations_overview")
        return render(request, "dashboard/no_organization.html")
    slug = request.session.get("current_org")
    chosen = next((m for m in memberships if m.organization.slug == slug), memberships[0])
    return redirect("dashboard_org", org=chosen.organization.slug)


@organization_view("org.view")
def organization_dashboard(request: OrganizationRequest) -> HttpResponse:
    membership = request.membership
    organization = request.organization
    slug = organization.slug
    members, member_count = dashboard_members(organization=organization)
    fleet = dashboard_fleet(membership=membership) if membership.can("instances.view") else None
    progress = dashboard_progress(membership=membership)
    checklist = [
        ("Verify your e-mail address", reverse("account_email"), progress.email_verified),
        ("Turn on two-factor authentication", reverse("mfa_index"), progress.two_factor),
    ]
    if membership.can("members.invite"):
        checklist.append(
            ("Invite a colleague", reverse("orgs:members", args=[slug]), member_count > 1)
        )
    has_quota = progress.has_quota
    if membership.can("quotas.request") and not has_quota:
        checklist.append(
            ("Ask for GPU quota", reverse("quotas:quota_request_new", args=[slug]), False)
        )
    if membership.can("instances.manage"):
        checklist += [
            ("Add an SSH key", reverse("sshkeys:list", args=[slug]), progress.has_ssh_key),
            (
                "Launch your first instance",
                reverse("instances:launch", args=[slug]),
                bool(fleet and fleet.recent),
            ),
        ]
    return render(
        request,
        "dashboard/dashboard.html",
        {
            "members": members,
            "member_count": member_count,
            "checklist": [
                {"label": label, "url": url, "done": done} for label, url, done in checklist
            ],
            "fleet": fleet,
            "has_quota": has_quota,
            "spend": dashboard_spend(membership=membership),
        },
    )


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Nothing else is looked at (a restart would not help)."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: database, Redis and a recent worker. Details for staff and monitoring."""
    ready, report = readiness_report()
    allowed = monitoring_access(
        remote_addr=request.META.get("REMOTE_ADDR", ""),
        authorization=request.META.get("HTTP_AUTHORIZATION", ""),
        token=settings.METRICS_TOKEN,
        allowed=tuple(settings.METRICS_ALLOWED_IPS),
    )
    if allowed != 200 and not (request.user.is_authenticated and request.user.is_staff):
        report = {"status": report["status"]}
    return JsonResponse(report, status=200 if ready else 503)


def home(request: HttpRequest) -> HttpResponse:
    """The public landing page; signed-in people go straight to their dashboard."""
    if request.user.is_authenticated:
        return redirect("dashboard")
    return render(request, "dashboard/home.html")
