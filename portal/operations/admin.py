"""The operator's side in Django admin: the overview page, suspensions, and staff actions on
organizations and instances. Changes go through the owning app's services."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from portal.instances import services as instances
from portal.instances.models import Instance
from portal.lib.errors import ApplicationError
from portal.operations import selectors
from portal.operations.forms import LiftForm, StaffTerminateForm, SuspendForm
from portal.orgs import services
from portal.orgs.models import Organization, Suspension
from portal.web.admin import admin_form_page
from portal.web.forms import form_add_application_error

admin.site.index_template = "operations/admin_index.html"


# --- The overview -----------------------------------------------------------------------------


def overview_view(request: HttpRequest):
    """/admin/overview/: sold and free capacity, revenue, queues, spenders, failures."""
    if not request.user.is_staff:
        raise PermissionDenied
    data = selectors.operator_overview()
    return TemplateResponse(
        request,
        "operations/admin_overview.html",
        {
            **admin.site.each_context(request),
            "title": "Operator overview",
            "currency": settings.CURRENCY,
            "o": data,
            "regions": selectors.group_rows(data.rows),
        },
    )


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

    def suspend_view(self, request: HttpRequest):
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

    def lift_view(self, request: HttpRequest, pk: int):
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
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        },
    )


terminate_with_reason.short_description = "Terminate the selected instances with a reason…"  # type: ignore[attr-defined]


def _add_instance_action() -> None:
    if Instance in admin.site._registry:
        instance_admin = admin.site._registry[Instance]
        instance_admin.actions = [*(instance_admin.actions or []), terminate_with_reason]


_add_instance_action()
