"""Operator staff review quota requests here, set limits by hand, and edit defaults and rules.

Every write goes through portal.quotas.services, so the admin applies the same rules as the
portal and leaves the same audit.
"""

import functools
from datetime import timedelta
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.db.models import F, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from portal.capacity.selectors import fleet_free_text
from portal.lib.errors import ApplicationError
from portal.orgs.admin_tools import (
    OrganizationFilter,
    organization_filter_link,
    search_with_organizations,
)
from portal.quotas import selectors, services
from portal.quotas.models import (
    OPEN_STATES,
    AutoApprovalRule,
    Kind,
    Quota,
    QuotaChange,
    QuotaDefault,
    QuotaRequest,
    QuotaRequestState,
    quota_request_title,
)
from portal.quotas.standing import organization_standing
from portal.web.admin import CatalogFilter, FleetListAdmin, list_age

STATE_COLOURS: dict[str, str] = {
    QuotaRequestState.SUBMITTED: "#2563eb",
    QuotaRequestState.MORE_INFO_NEEDED: "#8a6d1e",
    QuotaRequestState.APPROVED: "#087f56",
    QuotaRequestState.PARTLY_APPROVED: "#087f56",
    QuotaRequestState.DENIED: "#d03b3b",
    QuotaRequestState.WITHDRAWN: "#5d6680",
}


# A list's cells that many rows share, written once per process (every part escaped).
@functools.lru_cache(maxsize=1024)
def _state_badge(state: str, label: str) -> str:
    return format_html(
        '<span style="color:#fff;background:{};padding:2px 8px;border-radius:10px;'
        'font-weight:600;white-space:nowrap">{}</span>',
        STATE_COLOURS.get(state, "#5d6680"),
        label,
    )


@functools.lru_cache(maxsize=1024)
def _gpu_cell(name: str, code: str) -> str:
    return format_html('<span title="{}">{}</span>', name, code.upper())


@functools.lru_cache(maxsize=1024)
def _region_cell(code: str) -> str:
    return format_html('<span style="white-space:nowrap">{}</span>', code)


class AgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"
    BOUNDS = {"1d": (None, 1), "1-7d": (1, 7), "7d": (7, None)}

    def lookups(self, request, model_admin):
        return [
            ("1d", "Less than a day"),
            ("1-7d", "1 to 7 days"),
            ("7d", "Older than a week"),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None or value not in self.BOUNDS:
            return queryset
        low, high = self.BOUNDS[value]
        now = timezone.now()
        if low is not None:
            queryset = queryset.filter(created_at__lte=now - timedelta(days=low))
        if high is not None:
            queryset = queryset.filter(created_at__gt=now - timedelta(days=high))
        return queryset


class OpenFilter(admin.SimpleListFilter):
    title = "open or closed"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", "Open (waiting for staff or customer)"), ("no", "Closed")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(state__in=OPEN_STATES)
        if self.value() == "no":
            return queryset.exclude(state__in=OPEN_STATES)
        return queryset


class QuotaRequestDecisionForm(forms.ModelForm):
    """No request field is editable; the form carries the decision, which the service applies."""

    decision = forms.ChoiceField(
        choices=[("", "— no decision yet —"), *services.Decision.choices], required=False
    )
    grant_limit = forms.IntegerField(
        required=False,
        label="Granted limit (GPUs)",
        help_text="For an approval: empty grants what was asked; less is a partial approval.",
    )
    decision_message = forms.CharField(
        required=False,
        label="Message",
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        help_text="Sent to the organization's owners and admins with the decision. "
        "Required when you ask for more information.",
    )

    SERVICE_FIELDS = {"granted_limit": "grant_limit", "message": "decision_message"}

    class Meta:
        model = QuotaRequest
        fields: list[str] = []

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        decision = cleaned.get("decision")
        if not decision or self.instance.pk is None:
            return cleaned
        quota = selectors.quota_get(
            organization=self.instance.organization,
            region=self.instance.region,
            gpu_model=self.instance.gpu_model,
        ) or Quota(on_demand_limit=0, preemptible_limit=0)
        try:
            services.decision_validate(
                quota_request=self.instance,
                quota=quota,
                decision=decision,
                granted_limit=cleaned.get("grant_limit"),
                message=cleaned.get("decision_message", ""),
            )
        except ApplicationError as error:
            field = self.SERVICE_FIELDS.get(error.field or "", error.field)
            self.add_error(field if field in self.fields else None, error.message)
        return cleaned


@admin.register(QuotaRequest)
class QuotaRequestAdmin(FleetListAdmin):
    form = QuotaRequestDecisionForm
    list_display = [
        "number",
        "state_badge",
        "organization_link_in_list",
        "gpu",
        "region_code",
        "kind",
        "was",
        "asked",
        "granted",
        "age",
        "decider_name",
    ]
    list_display_links = ["number"]
    # Like the instance list: no filter listing every organization, no date hierarchy (the age
    # filter says when), a search reading the matching organizations' ids first.
    list_filter = [
        "state",
        OpenFilter,
        AgeFilter,
        ("region", CatalogFilter),
        ("gpu_model", CatalogFilter),
        "kind",
        OrganizationFilter,
    ]
    search_fields = ["organization__name", "organization__slug", "created_by__email", "=id"]
    search_help_text = "Organization, the requester's e-mail or the request's number"
    list_per_page = 50
    # What the rows show (and the checkbox's label) of the request; the names of its
    # organization, region, GPU model and decider as values of the row, not five related
    # models made per row.
    list_select_related = ()
    list_columns = (
        "organization",
        "region",
        "gpu_model",
        "kind",
        "state",
        "limit_at_submission",
        "requested_limit",
        "granted_limit",
        "created_at",
        "decided_by",
        "decided_by_rule",
    )
    list_annotations: ClassVar[dict[str, Any]] = {
        "organization_name": F("organization__name"),
        "region_code": F("region__code"),
        "gpu_code": F("gpu_model__code"),
        "gpu_name": F("gpu_model__name"),
        "decider_full_name": F("decided_by__full_name"),
        "decider_email": F("decided_by__email"),
        "rule_name": F("decided_by_rule__name"),
    }
    actions = ["approve_as_asked", "deny"]
    readonly_fields = [
        "number",
        "organization_link",
        "region",
        "gpu_model",
        "kind",
        "limit_at_submission",
        "requested_limit",
        "granted_limit",
        "fleet_free",
        "state_badge",
        "created_by",
        "created_at",
        "decided_at",
        "decider_name",
        "justification_text",
        "conversation",
        "current_use",
        "standing",
        "request_history",
        "limit_history",
    ]

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (
                "Request",
                {
                    "fields": [
                        ("number", "state_badge"),
                        "organization_link",
                        ("gpu_model", "region", "kind"),
                        ("limit_at_submission", "requested_limit", "granted_limit"),
                        "fleet_free",
                        ("created_by", "created_at"),
                        ("decided_at", "decider_name"),
                        "justification_text",
                        "conversation",
                    ]
                },
            ),
            (
                "The organization",
                {"fields": ["standing", "current_use", "request_history", "limit_history"]},
            ),
        ]
        if obj is not None and obj.is_open:
            fieldsets.insert(
                1, ("Decision", {"fields": ["decision", "grant_limit", "decision_message"]})
            )
        return fieldsets

    def has_add_permission(self, request) -> bool:
        return False  # customers ask in the portal

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # requests are part of the audit

    # --- list columns ---

    @admin.display(description="#", ordering="id")
    def number(self, obj: QuotaRequest) -> str:
        return f"#{obj.pk}"

    # The list's columns read the row's `list_annotations`.
    def checkbox_label(self, obj: Any) -> str:
        return quota_request_title(
            pk=obj.pk,
            organization_name=obj.organization_name,
            requested_limit=obj.requested_limit,
            kind=obj.kind,
            gpu_model_name=obj.gpu_name,
            region_code=obj.region_code,
        )

    @admin.display(description="GPU", ordering="gpu_model__code")
    def gpu(self, obj: Any) -> str:
        if obj.gpu_model_id is None:
            return "Storage (GB)"
        return _gpu_cell(obj.gpu_name, obj.gpu_code)

    @admin.display(description="Organization", ordering="organization__name")
    def organization_link_in_list(self, obj: Any) -> str:
        return organization_filter_link(obj.organization_id, obj.organization_name)

    def get_search_results(self, request, queryset, search_term):
        found = search_with_organizations(
            request, queryset, search_term, ["=id"], person_field="created_by"
        )
        return found, False

    @admin.display(description="Region", ordering="region__code")
    def region_code(self, obj: Any) -> str:
        return _region_cell(obj.region_code)

    # The numbers as Django's number_format writes them without a thousands separator.
    @admin.display(description="Was", ordering="limit_at_submission")
    def was(self, obj: QuotaRequest) -> str:
        return str(obj.limit_at_submission)

    @admin.display(description="Asked", ordering="requested_limit")
    def asked(self, obj: QuotaRequest) -> str:
        return str(obj.requested_limit)

    @admin.display(description="Granted", ordering="granted_limit")
    def granted(self, obj: QuotaRequest) -> str:
        return "—" if obj.granted_limit is None else str(obj.granted_limit)

    @admin.display(description="State", ordering="state")
    def state_badge(self, obj: QuotaRequest) -> str:
        return _state_badge(obj.state, obj.get_state_display())

    @admin.display(description="Age", ordering="created_at")
    def age(self, obj: QuotaRequest) -> str:
        return list_age(obj.created_at)

    @admin.display(description="Decided by")
    def decider_name(self, obj: Any) -> str:
        if obj.decided_by_rule_id:
            return f"Rule: {obj.rule_name}"
        # As `QuotaRequest.decider`: the person's name, else their e-mail.
        return obj.decider_full_name or obj.decider_email or "—"

    # --- change form panels ---

    @admin.display(description="Organization")
    def organization_link(self, obj: QuotaRequest) -> str:
        url = reverse("admin:orgs_organization_change", args=[obj.organization_id])
        return format_html('<a href="{}">{}</a> ({})', url, obj.organization, obj.organization.slug)

    @admin.display(description="Justification")
    def justification_text(self, obj: QuotaRequest) -> str:
        return format_html('<div style="white-space:pre-wrap">{}</div>', obj.justification)

    @admin.display(description="Conversation")
    def conversation(self, obj: QuotaRequest) -> str:
        steps = selectors.quota_request_conversation(quota_request=obj)
        return _panel("quotas/admin/conversation.html", {"steps": steps})

    @admin.display(description="Free in the fleet")
    def fleet_free(self, obj: QuotaRequest) -> str:
        if obj.gpu_model is None:
            return "— (a storage request)"
        return fleet_free_text(region=obj.region, gpu_model=obj.gpu_model)

    @admin.display(description="Limits and use")
    def current_use(self, obj: QuotaRequest) -> str:
        lines = [
            line
            for line in selectors.quota_lines(organization=obj.organization)
            if line.on_demand.limit
            or line.preemptible.limit
            or (line.region.pk, line.gpu_model.pk) == (obj.region_id, obj.gpu_model_id)
        ]
        storage = [
            line
            for line in selectors.storage_lines(organization=obj.organization)
            if line.use.limit or line.use.used or line.region.pk == obj.region_id
        ]
        return _panel(
            "quotas/admin/limits.html", {"lines": lines, "storage": storage, "current": obj}
        )

    @admin.display(description="Standing")
    def standing(self, obj: QuotaRequest) -> str:
        return _panel(
            "quotas/admin/standing.html",
            {"standing": organization_standing(obj.organization), "organization": obj.organization},
        )

    @admin.display(description="Requests")
    def request_history(self, obj: QuotaRequest) -> str:
        requests = selectors.quota_request_list_for_organization(organization=obj.organization)[:20]
        return _panel("quotas/admin/requests.html", {"requests": requests, "current": obj})

    @admin.display(description="Limit changes")
    def limit_history(self, obj: QuotaRequest) -> str:
        changes = selectors.quota_change_list_for_organization(organization=obj.organization)[:20]
        return _panel("quotas/admin/changes.html", {"changes": changes})

    # --- writes ---

    def save_model(self, request, obj: QuotaRequest, form, change: bool) -> None:
        """Nothing of the request is edited by hand; a chosen decision goes to the service."""
        decision = form.cleaned_data.get("decision")
        if not decision:
            return
        try:
            services.quota_request_decide(
                quota_request=obj,
                decision=decision,
                granted_limit=form.cleaned_data.get("grant_limit"),
                message=form.cleaned_data.get("decision_message", ""),
                decided_by=request.user,
            )
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)

    def save_related(self, request, form, formsets, change) -> None:
        pass

    def _decide_many(self, request, queryset: QuerySet[QuotaRequest], decision: str) -> None:
        done, failed = 0, []
        for quota_request in queryset:
            try:
                services.quota_request_decide(
                    quota_request=quota_request, decision=decision, decided_by=request.user
                )
            except ApplicationError as error:
                failed.append(f"#{quota_request.pk}: {error.message}")
            else:
                done += 1
        if done:
            verb = "approved as asked" if decision == services.Decision.APPROVE else "denied"
            self.message_user(request, f"{done} request{'s' if done != 1 else ''} {verb}.")
        for problem in failed:
            self.message_user(request, problem, messages.ERROR)

    @admin.action(description="Approve selected requests as asked")
    def approve_as_asked(self, request, queryset):
        self._decide_many(request, queryset, services.Decision.APPROVE)

    @admin.action(description="Deny selected requests")
    def deny(self, request, queryset):
        self._decide_many(request, queryset, services.Decision.DENY)


def _panel(template: str, context: dict) -> str:
    return mark_safe(render_to_string(template, context))  # noqa: S308 - our own template, escaped


class QuotaForm(forms.ModelForm):
    storage_limit_gb = forms.IntegerField(
        label="Storage limit (GB)",
        required=False,
        min_value=0,
        initial=0,
        help_text="Only on a row without GPU model (the region's volume storage).",
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2, "cols": 80}),
        required=False,
        help_text="Why the limits change. Required when a limit changes; kept in the audit.",
    )

    class Meta:
        model = Quota
        fields = [
            "organization",
            "region",
            "gpu_model",
            "on_demand_limit",
            "preemptible_limit",
            "storage_limit_gb",
        ]
        help_texts = {"gpu_model": "Leave empty for the region's volume storage limit (GB)."}

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("storage_limit_gb") is None:
            cleaned["storage_limit_gb"] = self.instance.storage_limit_gb or 0
        changed = {"on_demand_limit", "preemptible_limit", "storage_limit_gb"} & set(
            self.changed_data
        )
        if changed and not (cleaned.get("reason") or "").strip():
            self.add_error("reason", "Say why the limit changes.")
        # On a change the row's organization, region and GPU model are read-only (not fields).
        gpu_model = cleaned.get("gpu_model") if "gpu_model" in self.fields else None
        storage = gpu_model is None and (
            "gpu_model" in self.fields or self.instance.gpu_model_id is None
        )
        for name in changed:
            value = cleaned.get(name)
            if (name == "storage_limit_gb") != storage and value:
                self.add_error(
                    name,
                    "A row without GPU model holds only the storage limit; a GPU row no "
                    "storage limit.",
                )
                continue
            if value is not None:
                try:
                    services.check_limit_number(
                        value, field=name, kind=Kind.STORAGE if storage else Kind.ON_DEMAND
                    )
                except ApplicationError as error:
                    self.add_error(name, error.message)
        return cleaned


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    """Limits by hand (with a reason, audited); use is counted by launches, never edited here."""

    form = QuotaForm
    list_display = [
        "organization",
        "gpu_model",
        "region",
        "on_demand_limit",
        "on_demand_used",
        "preemptible_limit",
        "preemptible_used",
        "storage_limit_gb",
        "storage_used_gb",
        "updated_at",
    ]
    list_filter = ["region", "gpu_model"]
    search_fields = ["organization__name", "organization__slug"]
    list_select_related = ["organization", "region", "gpu_model"]
    autocomplete_fields = ["organization"]
    readonly_fields = [
        "on_demand_used",
        "preemptible_used",
        "storage_used_gb",
        "updated_at",
        "recent_changes",
    ]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return ["organization", "region", "gpu_model", *self.readonly_fields]
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Recent changes")
    def recent_changes(self, obj: Quota) -> str:
        changes = obj.changes.select_related("changed_by", "rule", "quota_request", "quota__region")
        return _panel("quotas/admin/changes.html", {"changes": changes[:20]})

    def save_model(self, request, obj: Quota, form, change: bool) -> None:
        reason = form.cleaned_data.get("reason", "")
        kinds = (Kind.STORAGE,) if obj.gpu_model is None else (Kind.ON_DEMAND, Kind.PREEMPTIBLE)
        for kind in kinds:
            services.quota_limit_set(
                organization=obj.organization,
                region=obj.region,
                gpu_model=obj.gpu_model,
                kind=kind,
                limit=obj.limit(kind),
                reason=reason or "Set by operator staff.",
                changed_by=request.user,
            )
        if obj.pk is None:  # added here: the service created the row
            obj.pk = Quota.objects.get(
                organization=obj.organization, region=obj.region, gpu_model=obj.gpu_model
            ).pk
        obj.refresh_from_db()


@admin.register(QuotaChange)
class QuotaChangeAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "organization",
        "gpu_model",
        "region",
        "kind",
        "old_limit",
        "new_limit",
        "who",
        "request_link",
    ]
    list_filter = ["kind", "quota__region", "quota__gpu_model", "created_at"]
    search_fields = ["quota__organization__name", "quota__organization__slug", "reason"]
    list_select_related = [
        "quota__organization",
        "quota__region",
        "quota__gpu_model",
        "changed_by",
        "rule",
        "quota_request",
    ]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Organization", ordering="quota__organization__name")
    def organization(self, obj: QuotaChange):
        return obj.quota.organization

    @admin.display(description="GPU model")
    def gpu_model(self, obj: QuotaChange):
        return obj.quota.gpu_model

    @admin.display(description="Region")
    def region(self, obj: QuotaChange):
        return obj.quota.region.code

    @admin.display(description="Request")
    def request_link(self, obj: QuotaChange) -> str:
        if not obj.quota_request_id:
            return "—"
        url = reverse("admin:quotas_quotarequest_change", args=[obj.quota_request_id])
        return format_html('<a href="{}">#{}</a>', url, obj.quota_request_id)


@admin.register(QuotaDefault)
class QuotaDefaultAdmin(admin.ModelAdmin):
    """Applied to organizations created from now on; existing organizations keep their limits."""

    list_display = ["gpu_model", "region", "on_demand_limit", "preemptible_limit"]
    list_editable = ["on_demand_limit", "preemptible_limit"]
    list_filter = ["region", "gpu_model"]
    list_select_related = ["region", "gpu_model"]


@admin.register(AutoApprovalRule)
class AutoApprovalRuleAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "active",
        "position",
        "gpu_model",
        "region",
        "kind",
        "max_limit",
        "require_verified_email",
        "require_no_unpaid_invoice",
        "capacity_margin",
    ]
    list_editable = ["active", "position"]
    list_filter = ["active", "gpu_model", "region"]
    list_select_related = ["gpu_model", "region"]
    fields = [
        "name",
        "active",
        "position",
        "gpu_model",
        "region",
        "kind",
        "max_limit",
        "require_verified_email",
        "require_no_unpaid_invoice",
        "capacity_margin",
    ]
