"""The operator's side in Django admin: the overview page, suspensions, and staff actions on
organizations and instances. Changes go through the owning app's services."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, tzinfo

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import dateformat, timezone, translation
from django.utils.formats import localize
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.timesince import timesince
from django.utils.timezone import template_localtime  # type: ignore[attr-defined]  # not in the stubs

from portal.accounts.http import AuthenticatedRequest
from portal.instances import services as instances
from portal.instances.models import Instance
from portal.lib.errors import ApplicationError
from portal.operations import charts, kept, revenue, selectors, support
from portal.operations.forms import LiftForm, StaffTerminateForm, SuspendForm
from portal.operations.history import RANGES, FleetHistory, fleet_history
from portal.orgs import services
from portal.orgs.models import Organization, Suspension
from portal.web.admin import admin_form_page
from portal.web.forms import form_add_application_error
from portal.web.templatetags.money import money

admin.site.index_template = "operations/admin_index.html"


# --- The overview -----------------------------------------------------------------------------


def overview_view(request: HttpRequest):
    """/admin/overview/: sold and free capacity, revenue, queues, spenders, failures."""
    if not request.user.is_staff:
        raise PermissionDenied
    # The versions of what the page keeps, read once for the overview and the history.
    version = kept.versions(kept.INSTANCES, kept.REQUESTS, kept.RESERVATIONS, kept.HISTORY)
    usage_versions = revenue.usage_versions()
    data = selectors.operator_overview(version=version, usage_versions=usage_versions)
    # Each row's admin link from one reversed URL per kind (a {% url %} per row cost ~50 µs).
    failed_rows = _failed_rows(data.failed, _change_url("admin:instances_instance_change"))
    request_url = _change_url("admin:quotas_quotarequest_change")
    for quota_request in data.oldest_quota_requests:
        quota_request.admin_url = request_url(quota_request.pk)  # type: ignore[attr-defined]
    organization_url = _change_url("admin:orgs_organization_change")
    for spender in data.top_spenders:
        spender["admin_url"] = organization_url(spender["id"])
    regions = selectors.group_rows(data.rows)
    places = [(r.region, r.gpu_model, r.gpu_model_name) for r in data.rows]
    # By default the largest fleet: where most of the operator's GPUs are.
    largest = max(data.rows, key=lambda r: r.total or 0, default=None)
    default = (largest.region, largest.gpu_model, largest.gpu_model_name) if largest else None
    wanted = request.GET.get("place", "")
    place = next((p for p in places if f"{p[0]}/{p[1]}" == wanted), default)
    range_key = request.GET.get("range", "24h")
    history = charts_context = None
    if place is not None:
        history = fleet_history(
            region=place[0],
            gpu_model=place[1],
            range_key=range_key,
            version=version[kept.HISTORY],
            usage_versions=usage_versions,
        )
        charts_context = _charts(history)
    return TemplateResponse(
        request,
        "operations/admin_overview.html",
        {
            **admin.site.each_context(request),
            "title": "Operator overview",
            "currency": settings.CURRENCY,
            "o": data,
            "failed_rows": failed_rows,
            "fleet_rows": _fleet_rows(regions),
            "quota_rows": _quota_rows(data.oldest_quota_requests, data.now),
            "spender_rows": _spender_rows(data.top_spenders, settings.CURRENCY),
            "places": [
                {"key": f"{p[0]}/{p[1]}", "label": f"{p[0]} · {p[2]}", "current": p == place}
                for p in places
            ],
            "ranges": [
                {"key": key, "label": label, "current": history and history.range_key == key}
                for key, (label, _step, _n) in RANGES.items()
            ],
            "place_key": f"{place[0]}/{place[1]}" if place else "",
            "h": history,
            "charts": charts_context,
        },
    )


_PK_MARK = 987654321987


def _change_url(name: str) -> Callable[[int], str]:
    """The URL of `name` for a primary key, reversed once (the same as reverse() of each)."""
    pattern = reverse(name, args=[_PK_MARK])
    return lambda pk: pattern.replace(str(_PK_MARK), str(int(pk)), 1)


def _failed_rows(failed: list[selectors.FailedInstance], url: Callable[[int], str]) -> SafeString:
    """The failed instances' rows, as the template wrote them (name linked, organization, type
    and region, the reason truncated to 80 characters, the local time), in Python: 50 rows of
    template variables and filters were a quarter of the page's rendering. Each row's HTML is
    kept per process for all it is made of (the time zone and language in force too)."""
    zone, language = timezone.get_current_timezone(), translation.get_language()
    return mark_safe(  # noqa: S308 - escaped values and constants
        "".join(
            _failed_row(
                url(i.pk),
                i.name,
                i.organization.name,
                i.instance_type.name,
                i.region.code,
                i.state_reason,
                i.state_changed_at,
                zone,
                language,
            )
            for i in failed
        )
    )


@functools.lru_cache(maxsize=4096)
def _failed_row(
    link: str,
    name: str,
    organization: str,
    instance_type: str,
    region: str,
    reason: str,
    at: datetime,
    zone: tzinfo,
    language: str | None,
) -> str:
    """One failed instance's row in `zone` and `language` (those in force when called)."""
    when = dateformat.format(template_localtime(at), "H:i")
    return (
        f'<tr><td><a href="{escape(link)}">{escape(name)}</a></td>'
        f"<td>{escape(organization)}</td>"
        f"<td>{escape(instance_type)} · {escape(region)}</td>"
        f'<td>{escape(Truncator(reason).chars(80))}</td><td class="num">{escape(when)}</td></tr>'
    )


# The tables' rows in Python, as the template wrote them (its loops' variables and filters were
# most of the page's own rendering): each value escaped and localized as a template variable is.


def _text(value: object) -> str:
    return escape(localize(value))


def _fleet_rows(regions: dict[str, list[selectors.FleetRow]]) -> SafeString:
    """The capacity table's rows: each region's name on its first row, the numbers, and the
    sold bar ({% widthratio %} of each kind over the fleet)."""
    rows = []
    for region, places in regions.items():
        for first, r in enumerate(places):
            if r.total:
                total = r.total
                bar = (
                    f'<div class="ov-bar" title="{_text(r.sold)} of {_text(total)} sold">'
                    f'<span class="ov-od" style="width:{_ratio(r.on_demand, total)}%"></span>'
                    f'<span class="ov-pre" style="width:{_ratio(r.preemptible, total)}%"></span>'
                    f'<span class="ov-res" style="width:{_ratio(r.reserved, total)}%"></span>'
                    "</div>"
                )
            else:
                bar = f'<span class="ov-muted">{_text(r.sold)} sold</span>'
            rows.append(
                f"<tr><td>{f'<strong>{_text(region)}</strong>' if first == 0 else ''}</td>"
                f"<td>{_text(r.gpu_model_name)}</td>"
                f'<td class="num">{"—" if r.total is None else _text(r.total)}</td>'
                f'<td class="num">{_text(r.on_demand)}</td>'
                f'<td class="num">{_text(r.preemptible)}</td>'
                f'<td class="num">{_text(r.reserved)}</td>'
                f'<td class="num"><strong>{"—" if r.free is None else _text(r.free)}</strong></td>'
                f"<td>{bar}</td></tr>"
            )
    if not rows:
        rows.append(
            '<tr><td colspan="8" class="ov-muted">'
            "No capacity report and nothing sold yet.</td></tr>"
        )
    return mark_safe("".join(rows))  # noqa: S308 - escaped values and constants


def _ratio(value: int, whole: int) -> str:
    """{% widthratio value whole 100 %}."""
    return str(round(value / whole * 100))


def _quota_rows(requests: list, now: datetime) -> SafeString:
    """The oldest open quota requests: link, GPU model and region, organization, the limit
    asked, how long it has waited."""
    return mark_safe(  # noqa: S308 - escaped values and constants
        "".join(
            f'<tr><td><a href="{escape(q.admin_url)}">#{_text(q.pk)}</a> '
            f"{_text(q.gpu_model.name)} · {_text(q.region.code)}</td>"
            f"<td>{_text(q.organization.name)}</td>"
            f'<td class="num">{_text(q.requested_limit)}</td>'
            f'<td class="num">{escape(timesince(q.created_at, now))}</td></tr>'
            for q in requests
        )
    )


def _spender_rows(spenders: list[dict], currency: str) -> SafeString:
    """The highest spenders: the organization linked, its usage so far."""
    rows = [
        f'<tr><td><a href="{escape(s["admin_url"])}">{_text(s["name"])}</a></td>'
        f'<td class="num">{escape(money(s["spend"], currency))}</td></tr>'
        for s in spenders
    ] or ['<tr><td colspan="2" class="ov-muted">No usage this month yet.</td></tr>']
    return mark_safe("".join(rows))  # noqa: S308 - escaped values and constants


def _labels(history: FleetHistory) -> list[str]:
    fmt = (
        "%H:%M"
        if history.range_key == "24h"
        else "%b %d"
        if history.range_key == "30d"
        else ("%a %H:%M")
    )
    return [b.start.strftime(fmt) for b in history.buckets]


def _charts(history: FleetHistory) -> dict:
    labels = _labels(history)
    b = history.buckets
    return {
        "fleet": charts.stacked_bars(
            title="Internal vs sold vs free (GPUs, average)",
            description=f"Per bucket over the last {history.range_label}: GPUs used by the "
            "operator's own work, sold to customers, and free.",
            labels=labels,
            series=[
                charts.Series("internal", "c-internal", [x.internal for x in b]),
                charts.Series("sold", "c-sold", [x.sold for x in b]),
                charts.Series("free", "c-free", [x.free for x in b]),
            ],
            tick=charts.whole,
            testid="chart-fleet",
        ),
        "fill": charts.stacked_bars(
            title="Fill rate",
            description="GPU-hours sold over GPU-hours not used internally, per bucket.",
            labels=labels,
            series=[charts.Series("fill rate", "c-fill", [x.fill_rate for x in b])],
            top=1.0,
            tick=charts.percent,
            testid="chart-fill-rate",
        ),
        "reclaims": charts.stacked_bars(
            title="Reclaim orders",
            description="Orders per bucket: met on time with full notice, and the others.",
            labels=labels,
            series=[
                charts.Series("met", "c-met", [x.orders_met for x in b]),
                charts.Series("not met or open", "c-unmet", [x.orders - x.orders_met for x in b]),
            ],
            tick=charts.plain,
            testid="chart-reclaims",
        ),
    }


# --- Suspensions ------------------------------------------------------------------------------


@admin.register(Suspension)
class SuspensionAdmin(admin.ModelAdmin):
    list_display = [
        "organization",
        "in_force",
        "reason_short",
        "suspended_at",
        "lifted_at",
        "lift_link",
    ]
    list_filter = [("lifted_at", admin.EmptyFieldListFilter)]
    search_fields = ["organization__name", "reason"]
    list_select_related = ["organization"]
    actions = ["lift"]
    readonly_fields = [f.name for f in Suspension._meta.fields]

    @admin.display(boolean=True, description="in force")
    def in_force(self, obj: Suspension) -> bool:
        return obj.is_active

    @admin.display(description="")
    def lift_link(self, obj: Suspension) -> str:
        if not obj.is_active:
            return ""
        url = reverse("admin:orgs_suspension_lift", args=[obj.pk])
        return format_html('<a href="{}">Lift…</a>', url)

    @admin.display(description="reason")
    def reason_short(self, obj: Suspension) -> str:
        return obj.reason if len(obj.reason) <= 80 else obj.reason[:79] + "…"

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        own = [
            path(
                "suspend/",
                self.admin_site.admin_view(self.suspend_view),
                name="orgs_suspension_suspend",
            ),
            path(
                "<int:pk>/lift/",
                self.admin_site.admin_view(self.lift_view),
                name="orgs_suspension_lift",
            ),
        ]
        return own + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:orgs_suspension_suspend"))

    def suspend_view(self, request: AuthenticatedRequest):
        if not self.has_add_permission(request):
            raise PermissionDenied
        initial = {"organization": request.GET.get("organization")}
        form = SuspendForm(request.POST if request.method == "POST" else None, initial=initial)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                services.organization_suspend(
                    organization=data["organization"],
                    reason=data["reason"],
                    stop_instances=data["stop_instances"],
                    by=request.user,
                )
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                self.message_user(
                    request,
                    f"{data['organization']} is suspended; its owners were e-mailed.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:orgs_suspension_changelist"))
        return admin_form_page(
            request,
            self,
            title="Suspend an organization",
            form=form,
            intro="A suspended organization cannot launch instances and its API tokens are "
            "refused until the suspension is lifted. Instances keep running unless you stop them.",
        )

    def lift_view(self, request: AuthenticatedRequest, pk: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        suspension = get_object_or_404(Suspension.objects.select_related("organization"), pk=pk)
        form = LiftForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                services.organization_unsuspend(
                    organization=suspension.organization,
                    by=request.user,
                    note=form.cleaned_data["note"],
                )
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                self.message_user(
                    request, f"The suspension of {suspension.organization} is lifted.", "success"
                )
                return HttpResponseRedirect(reverse("admin:orgs_suspension_changelist"))
        return admin_form_page(
            request,
            self,
            title=f"Lift the suspension of {suspension.organization}",
            form=form,
            intro=f"Suspended on {suspension.suspended_at:%Y-%m-%d %H:%M} UTC: {suspension.reason}",
        )

    @admin.action(description="Lift the selected suspensions")
    def lift(self, request, queryset):
        for suspension in queryset.select_related("organization"):
            try:
                services.organization_unsuspend(
                    organization=suspension.organization, by=request.user
                )
            except ApplicationError as error:
                self.message_user(request, error.message, messages.WARNING)
            else:
                self.message_user(
                    request, f"The suspension of {suspension.organization} is lifted.", "success"
                )


@admin.action(description="Suspend the selected organization…")
def suspend_organization(modeladmin, request, queryset):
    """On the organizations list: opens the suspension form for the (first) selected one."""
    organization = queryset.order_by("pk").first()
    url = reverse("admin:orgs_suspension_suspend")
    return HttpResponseRedirect(f"{url}?organization={organization.pk}" if organization else url)


# The organizations admin (portal.orgs) gains the action; orgs is registered before us.
if Organization in admin.site._registry:
    _org_admin = admin.site._registry[Organization]
    _org_admin.actions = [*(_org_admin.actions or []), suspend_organization]


@admin.action(description="Terminate the selected instances with a reason…")
def terminate_with_reason(modeladmin, request, queryset):
    """Django's intermediate-page pattern: ask for the reason, then terminate."""
    form = StaffTerminateForm(request.POST if "apply" in request.POST else None)
    if "apply" in request.POST and form.is_valid():
        done = 0
        for instance in queryset:
            try:
                instances.instance_terminate_by_staff(
                    user=request.user, instance=instance, reason=form.cleaned_data["reason"]
                )
            except ApplicationError as error:
                modeladmin.message_user(request, f"{instance.name}: {error.message}", "warning")
            else:
                done += 1
        if done:
            modeladmin.message_user(request, f"Terminating {done} instance(s).", "success")
        return None
    return TemplateResponse(
        request,
        "operations/admin_terminate.html",
        {
            **modeladmin.admin_site.each_context(request),
            "opts": modeladmin.model._meta,
            "title": "Terminate with a reason",
            "form": form,
            "instances": queryset,
            "action": "terminate_with_reason",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        },
    )


def _add_instance_action() -> None:
    if Instance in admin.site._registry:
        instance_admin = admin.site._registry[Instance]
        instance_admin.actions = [*(instance_admin.actions or []), terminate_with_reason]


_add_instance_action()


# --- The support desk -----------------------------------------------------------------------


def customer_search_view(request: HttpRequest):
    """/admin/customers/?q=: find an organization by e-mail, name, instance name or IP."""
    if not request.user.is_staff:
        raise PermissionDenied
    query = request.GET.get("q", "").strip()
    results = list(support.customer_search(query=query))
    if len(results) == 1:
        return HttpResponseRedirect(reverse("operations_customer", args=[results[0].pk]))
    return TemplateResponse(
        request,
        "operations/admin_customer_search.html",
        {
            **admin.site.each_context(request),
            "title": "Customers",
            "query": query,
            "results": results,
        },
    )


def customer_view(request: AuthenticatedRequest, organization_id: int):
    """/admin/customers/<id>/: one organization for the support desk, with staff notes."""
    if not request.user.is_staff:
        raise PermissionDenied
    organization = get_object_or_404(Organization, pk=organization_id)
    note_error = ""
    if request.method == "POST":
        try:
            support.staff_note_add(
                organization=organization, by=request.user, body=request.POST.get("body", "")
            )
        except ApplicationError as error:
            note_error = error.message
        else:
            messages.success(request, "Note added.")
            return HttpResponseRedirect(reverse("operations_customer", args=[organization.pk]))
    page = support.customer_page(organization=organization)
    return TemplateResponse(
        request,
        "operations/admin_customer.html",
        {
            **admin.site.each_context(request),
            "title": organization.name,
            "c": page,
            "currency": settings.CURRENCY,
            "note_error": note_error,
            "note_body": request.POST.get("body", "") if note_error else "",
        },
        status=400 if note_error else 200,
    )
