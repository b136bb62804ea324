"""Quotas: limits per organization, region and GPU model; requests to change them; the audit.

A GPU quota row holds two limits (on-demand and preemptible GPUs) and how many GPUs of each are
in use. A storage quota row (no GPU model) holds the volume storage limit of a region in GB and
how many GB the organization's volumes take. Limits change only through
`services.quota_limit_set`, which writes a `QuotaChange`; requests and staff decisions are the
same for both.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from portal.catalog.models import GpuModel, Region
from portal.orgs.models import Organization


class Kind(models.TextChoices):
    """Which of the two limits of a quota row."""

    ON_DEMAND = "on_demand", "On-demand"
    PREEMPTIBLE = "preemptible", "Preemptible"
    STORAGE = "storage", "Storage"


# `get_kind_display().lower()`, without the dict of choices it builds on each call: a
# request's name is written for every row of the admin's list (its checkbox's label).
_KIND_LABELS: dict[str, str] = {str(value): str(label).lower() for value, label in Kind.choices}


GPU_KINDS = (Kind.ON_DEMAND, Kind.PREEMPTIBLE)


def unit_of(kind: str, n: int | None = None) -> str:
    """The unit of a limit of this kind, for messages ("GB", "GPU", "GPUs")."""
    if kind == Kind.STORAGE:
        return "GB"
    return "GPU" if n == 1 else "GPUs"


def kind_of(preemptible: bool) -> str:
    return Kind.PREEMPTIBLE if preemptible else Kind.ON_DEMAND


class Quota(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="quotas")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    # None: the row of the region's volume storage (the storage_* fields).
    gpu_model = models.ForeignKey(
        GpuModel,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name="GPU model",
        null=True,
        blank=True,
    )
    on_demand_limit = models.PositiveIntegerField("on-demand GPU limit", default=0)
    preemptible_limit = models.PositiveIntegerField("preemptible GPU limit", default=0)
    on_demand_used = models.PositiveIntegerField("on-demand GPUs in use", default=0)
    preemptible_used = models.PositiveIntegerField("preemptible GPUs in use", default=0)
    storage_limit_gb = models.PositiveIntegerField("storage limit (GB)", default=0)
    storage_used_gb = models.PositiveIntegerField("storage in use (GB)", default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "region__code", "gpu_model__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "region", "gpu_model"], name="one_quota_per_org_region_gpu"
            ),
            models.UniqueConstraint(
                fields=["organization", "region"],
                condition=Q(gpu_model__isnull=True),
                name="one_storage_quota_per_org_region",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization}: {self.subject} in {self.region.code}"

    @property
    def is_storage(self) -> bool:
        return self.gpu_model_id is None

    @property
    def subject(self) -> str:
        """What the row limits: a GPU model's name, or "Storage"."""
        return "Storage" if self.gpu_model is None else str(self.gpu_model)

    def limit(self, kind: str) -> int:
        return int(getattr(self, self.limit_field(kind)))

    def used(self, kind: str) -> int:
        return int(getattr(self, self.used_field(kind)))

    def free(self, kind: str) -> int:
        return max(0, self.limit(kind) - self.used(kind))

    @staticmethod
    def limit_field(kind: str) -> str:
        if kind == Kind.STORAGE:
            return "storage_limit_gb"
        return "preemptible_limit" if kind == Kind.PREEMPTIBLE else "on_demand_limit"

    @staticmethod
    def used_field(kind: str) -> str:
        if kind == Kind.STORAGE:
            return "storage_used_gb"
        return "preemptible_used" if kind == Kind.PREEMPTIBLE else "on_demand_used"


class QuotaDefault(models.Model):
    """The limits every new organization starts with, per region and GPU model (zero allowed)."""

    region = models.ForeignKey(Region, on_delete=models.CASCADE, related_name="+")
    gpu_model = models.ForeignKey(
        GpuModel, on_delete=models.CASCADE, related_name="+", verbose_name="GPU model"
    )
    on_demand_limit = models.PositiveIntegerField("on-demand GPU limit", default=0)
    preemptible_limit = models.PositiveIntegerField("preemptible GPU limit", default=0)

    class Meta:
        ordering = ["region__code", "gpu_model__name"]
        verbose_name = "default quota for new organizations"
        verbose_name_plural = "default quotas for new organizations"
        constraints = [
            models.UniqueConstraint(fields=["region", "gpu_model"], name="one_default_per_pair")
        ]

    def __str__(self) -> str:
        return f"{self.gpu_model} in {self.region.code}"


class AutoApprovalRule(models.Model):
    """Approves a request on submission when it asks for no more than `max_limit` GPUs.

    The first active rule (lowest position) that matches decides, and is recorded as the decider.
    """

    name = models.CharField(max_length=100)
    active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(
        default=100, help_text="Rules are tried from the lowest position up."
    )
    gpu_model = models.ForeignKey(
        GpuModel, on_delete=models.CASCADE, related_name="+", verbose_name="GPU model"
    )
    region = models.ForeignKey(
        Region,
        on_delete=models.CASCADE,
        related_name="+",
        null=True,
        blank=True,
        help_text="Leave empty for every region.",
    )
    kind = models.CharField(
        "limit",
        max_length=16,
        choices=Kind.choices,
        blank=True,
        help_text="Leave empty for both on-demand and preemptible limits.",
    )
    max_limit = models.PositiveIntegerField(
        "up to (GPUs)", help_text="The highest limit this rule grants on its own."
    )
    require_verified_email = models.BooleanField(
        "only if an owner has a verified e-mail address", default=True
    )
    require_no_unpaid_invoice = models.BooleanField("only if no invoice is unpaid", default=True)
    capacity_margin = models.PositiveIntegerField(
        "only if the fleet's free GPUs cover the increase plus",
        null=True,
        blank=True,
        help_text="GPUs kept free on top of the increase, from the provisioning backend's last "
        "capacity report; leave empty to approve regardless of free capacity.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "pk"]
        verbose_name = "automatic approval rule"

    def __str__(self) -> str:
        return self.name


class QuotaRequestState(models.TextChoices):
    SUBMITTED = "submitted", "Submitted"
    MORE_INFO_NEEDED = "more_info_needed", "More information needed"
    APPROVED = "approved", "Approved"
    PARTLY_APPROVED = "partly_approved", "Partly approved"
    DENIED = "denied", "Denied"
    WITHDRAWN = "withdrawn", "Withdrawn"


OPEN_STATES = (QuotaRequestState.SUBMITTED, QuotaRequestState.MORE_INFO_NEEDED)


class QuotaRequestQuerySet(models.QuerySet["QuotaRequest"]):
    def open(self) -> "QuotaRequestQuerySet":
        return self.filter(state__in=OPEN_STATES)


class QuotaRequest(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="quota_requests"
    )
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    # None for a storage request (kind "storage").
    gpu_model = models.ForeignKey(
        GpuModel,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name="GPU model",
        null=True,
        blank=True,
    )
    kind = models.CharField("limit", max_length=16, choices=Kind.choices)
    limit_at_submission = models.PositiveIntegerField()
    requested_limit = models.PositiveIntegerField()
    granted_limit = models.PositiveIntegerField(null=True, blank=True)
    justification = models.TextField()
    state = models.CharField(
        max_length=20, choices=QuotaRequestState.choices, default=QuotaRequestState.SUBMITTED
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    decided_by_rule = models.ForeignKey(
        AutoApprovalRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = QuotaRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        # The admin's list (newest first, then the id Django adds): a first page of 10,000
        # requests without sorting them all.
        indexes = [models.Index(fields=["-created_at", "-id"], name="quota_request_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "region", "gpu_model", "kind"],
                condition=Q(state__in=["submitted", "more_info_needed"]),
                name="one_open_quota_request_per_limit",
            ),
        ]

    def __str__(self) -> str:
        return quota_request_title(
            pk=self.pk,
            organization_name=self.organization.name,
            requested_limit=self.requested_limit,
            kind=self.kind,
            gpu_model_name=None if self.gpu_model is None else self.gpu_model.name,
            region_code=self.region.code,
        )

    @property
    def is_storage(self) -> bool:
        return self.kind == Kind.STORAGE

    @property
    def subject(self) -> str:
        """What the request is for: a GPU model's name, or "Storage"."""
        return "Storage" if self.gpu_model is None else str(self.gpu_model)

    @property
    def unit(self) -> str:
        return "GB" if self.kind == Kind.STORAGE else "GPUs"

    @property
    def what(self) -> str:
        """What the limit counts, after a number: "on-demand H100 80GB GPUs", "GB of volume
        storage"."""
        if self.kind == Kind.STORAGE:
            return "GB of volume storage"
        return f"{self.get_kind_display().lower()} {self.gpu_model} GPUs"

    @property
    def limit_name(self) -> str:
        """ "on-demand limit for H100 80GB", "storage limit"."""
        if self.kind == Kind.STORAGE:
            return "storage limit"
        return f"{self.get_kind_display().lower()} limit for {self.gpu_model}"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def decider(self) -> str:
        if self.decided_by_rule_id:
            return f"automatic rule “{self.decided_by_rule}”"
        if self.decided_by is not None:  # no query when there is none
            return self.decided_by.display_name
        return ""


def quota_request_title(
    *,
    pk: int | None,
    organization_name: str,
    requested_limit: int,
    kind: str,
    gpu_model_name: str | None,
    region_code: str,
) -> str:
    """A request in one line ("#12 Acme: 16 on-demand H100 80GB in us-east-1"), from its
    values: `str()` of a request, and the admin list's rows, which read the names as values of
    the row rather than the related rows."""
    if kind == Kind.STORAGE:
        return f"#{pk} {organization_name}: {requested_limit} GB storage in {region_code}"
    return (
        f"#{pk} {organization_name}: {requested_limit} {_KIND_LABELS.get(kind, kind)} "
        f"{gpu_model_name} in {region_code}"
    )


class Author(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    STAFF = "staff", "Operator staff"
    RULE = "rule", "Automatic rule"


class QuotaRequestMessage(models.Model):
    """One step of a request's conversation: a decision, a question from staff, an answer.

    `state` is the state the request moved into with this step (blank for a plain note).
    """

    quota_request = models.ForeignKey(
        QuotaRequest, on_delete=models.CASCADE, related_name="messages"
    )
    author = models.CharField(max_length=16, choices=Author.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rule = models.ForeignKey(
        AutoApprovalRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=20, choices=QuotaRequestState.choices, blank=True)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_author_display()} on #{self.quota_request_id}: {self.state or 'note'}"

    @property
    def author_name(self) -> str:
        if self.author == Author.RULE:
            return f"Automatic rule “{self.rule}”" if self.rule else "Automatic rule"
        if self.author == Author.STAFF:
            return f"{settings.SITE_NAME} operations"
        return self.user.display_name if self.user else "A former member"


class QuotaChange(models.Model):
    """The audit of every change of a limit: who, when, old, new, why, and which request."""

    quota = models.ForeignKey(Quota, on_delete=models.CASCADE, related_name="changes")
    kind = models.CharField("limit", max_length=16, choices=Kind.choices)
    old_limit = models.PositiveIntegerField()
    new_limit = models.PositiveIntegerField()
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rule = models.ForeignKey(
        AutoApprovalRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField()
    quota_request = models.ForeignKey(
        QuotaRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="changes"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.quota} {self.get_kind_display()}: {self.old_limit} → {self.new_limit}"

    @property
    def unit(self) -> str:
        return unit_of(self.kind)

    @property
    def who(self) -> str:
        if self.rule_id:
            return f"Automatic rule “{self.rule}”"
        if self.changed_by is not None:  # no query when there is none
            return self.changed_by.display_name
        return settings.SITE_NAME
