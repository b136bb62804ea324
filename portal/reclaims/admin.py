"""Reclaims in Django admin: the policy, orders (made by staff or from backend shortfalls)
with their victims and progress. Every change goes through the services."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from portal.accounts.http import AuthenticatedRequest
from portal.lib.errors import ApplicationError
from portal.reclaims import services
from portal.reclaims.forms import ReclaimOrderForm, ReclaimPolicyForm
from portal.reclaims.models import ReclaimOrder, ReclaimPolicy, ReclaimVictim
from portal.web.admin import admin_form_page
from portal.web.forms import form_add_application_error


@admin.register(ReclaimPolicy)
class ReclaimPolicyAdmin(admin.ModelAdmin):
    form = ReclaimPolicyForm
    readonly_fields = ["updated_at", "updated_by"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        policy = services.policy_get()
        return HttpResponseRedirect(
            reverse("admin:reclaims_reclaimpolicy_change", args=[policy.pk])
        )

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)

        class Checked(form_class):  # type: ignore[misc,valid-type]
            def clean(self):
                data = super().clean()
                if not self.errors:
                    try:
                        services.policy_check(
                            notice_seconds=data["notice_seconds"],
                            preemptible_only=data["preemptible_only"],
                            spare_reserved=data["spare_reserved"],
                            whole_machines=data["whole_machines"],
                        )
                    except ApplicationError as error:
                        form_add_application_error(self, error)
                return data

        return Checked

    def save_model(self, request, obj, form, change) -> None:
        services.policy_update(
            by=request.user,
            notice_seconds=form.cleaned_data["notice_seconds"],
            order=form.cleaned_data["order"],
        )


class VictimInline(admin.TabularInline):
    model = ReclaimVictim
    extra = 0
    can_delete = False
    fields = VICTIM_FIELDS = (
        "rank",
        "instance_link",
        "organization",
        "gpus",
        "price_per_hour",
        "launched_at",
        "noticed_at",
        "reclaim_at",
        "backend_told_at",
        "ended_at",
        "ended_state",
    )
    readonly_fields = VICTIM_FIELDS

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="instance")
    def instance_link(self, victim: ReclaimVictim) -> str:
        url = reverse("admin:instances_instance_change", args=[victim.instance_id])
        return format_html('<a href="{}">{}</a>', url, victim.instance.name)

    @admin.display(description="organization")
    def organization(self, victim: ReclaimVictim) -> str:
        return victim.instance.organization.name


@admin.register(ReclaimOrder)
class ReclaimOrderAdmin(admin.ModelAdmin):
    list_display = [
        "label",
        "source",
        "region",
        "gpu_model",
        "gpus",
        "returnable_gpus",
        "deadline",
        "end_at",
        "state",
        "progress",
        "met",
    ]
    list_filter = ["state", "source", "region", "gpu_model"]
    list_select_related = ["region", "gpu_model"]
    readonly_fields = [
        "summary",
        "progress",
        *(f.name for f in ReclaimOrder._meta.fields if f.name != "summary"),
    ]
    inlines = [VictimInline]

    @admin.display(description="order", ordering="pk")
    def label(self, order: ReclaimOrder) -> str:
        return f"RO-{order.pk}"

    @admin.display(description="progress")
    def progress(self, order: ReclaimOrder) -> str:
        victims = list(order.victims.all())
        if not victims:
            return "no victims"
        ended = [v for v in victims if v.ended_at is not None]
        freed = sum(v.gpus for v in ended)
        total = sum(v.gpus for v in victims)
        return f"{len(ended)} of {len(victims)} instances ended; {freed} of {total} GPUs free"

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        own = [
            path(
                "create/",
                self.admin_site.admin_view(self.create_view),
                name="reclaims_reclaimorder_create",
            )
        ]
        return own + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:reclaims_reclaimorder_create"))

    def create_view(self, request: AuthenticatedRequest):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ReclaimOrderForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                order = services.reclaim_order_create(by=request.user, **data)
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                self.message_user(
                    request, f"Reclaim order RO-{order.pk}: {order.summary}", "success"
                )
                return HttpResponseRedirect(
                    reverse("admin:reclaims_reclaimorder_change", args=[order.pk])
                )
        policy = services.policy_get()
        return admin_form_page(
            request,
            self,
            title="Reclaim GPUs",
            form=form,
            intro=f"Backfill chooses the instances by the reclaim policy ({policy}): "
            "preemptible only, never reserved capacity, whole machines. Each gets its notice "
            "(e-mail, webhook, instance page, inside the machine) and ends at the end of it.",
        )


@admin.register(ReclaimVictim)
class ReclaimVictimAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "instance",
        "gpus",
        "price_per_hour",
        "noticed_at",
        "reclaim_at",
        "ended_at",
        "ended_state",
    ]
    list_filter = ["ended_state"]
    list_select_related = ["instance", "order"]
    readonly_fields = [f.name for f in ReclaimVictim._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
