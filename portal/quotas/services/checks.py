"""What the quota writes refuse, and why: the errors a customer reads, and the checks of input."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse

from portal.catalog.models import GpuModel, InstanceType, Region
from portal.lib.errors import ApplicationError
from portal.orgs.models import Organization
from portal.quotas.models import (
    AutoApprovalRule,
    Kind,
    Quota,
    kind_of,
    unit_of,
)

JUSTIFICATION_MAX_LENGTH = 4000
MESSAGE_MAX_LENGTH = 4000


class Decision:
    """What staff (or a rule) can do with an open request."""

    APPROVE = "approve"
    DENY = "deny"
    MORE_INFO = "more_info"
    choices = [
        (APPROVE, "Approve (fully or partly)"),
        (DENY, "Deny"),
        (MORE_INFO, "Ask for more information"),
    ]


def _gpus(n: int) -> str:
    return f"{n} GPU{'' if n == 1 else 's'}"


def amount_text(n: int, kind: str) -> str:
    """`n` in the unit of the kind's limits: "3 GPUs", "500 GB"."""
    return f"{n} {unit_of(kind, n)}"


class QuotaExceeded(ApplicationError):
    """A launch would take more GPUs than the organization's limit leaves free."""

    def __init__(
        self,
        *,
        organization: Organization,
        region: Region,
        gpu_model: GpuModel,
        preemptible: bool,
        requested: int,
        limit: int,
        used: int,
    ):
        self.organization = organization
        self.region = region
        self.gpu_model = gpu_model
        self.kind = kind_of(preemptible)
        self.requested = requested
        self.limit = limit
        self.used = used
        self.free = max(0, limit - used)
        label = "preemptible" if preemptible else "on-demand"
        message = (
            f"This needs {requested} {label} {gpu_model.name} GPU{'' if requested == 1 else 's'} "
            f"in {region.code}, but your {label} limit there is {_gpus(limit)} with {used} in use, "
            f"so {self.free} {'is' if self.free == 1 else 'are'} free. "
            "Ask for a higher limit on the Quotas page."
        )
        super().__init__(message, code="quota_exceeded")

    @property
    def request_url(self) -> str:
        """The quota request form, filled in for a limit that would fit this launch."""
        query = urlencode(
            {
                "region": self.region.code,
                "gpu": self.gpu_model.code,
                "kind": self.kind,
                "limit": min(self.used + self.requested, settings.QUOTA_MAX_GPUS),
            }
        )
        return f"{reverse('quotas:quota_request_new', args=[self.organization.slug])}?{query}"


class StorageQuotaExceeded(ApplicationError):
    """A volume (or its growth) would take more GB than the storage limit leaves free."""

    def __init__(
        self, *, organization: Organization, region: Region, requested: int, limit: int, used: int
    ):
        self.organization = organization
        self.region = region
        self.requested = requested
        self.limit = limit
        self.used = used
        self.free = max(0, limit - used)
        super().__init__(
            f"This needs {requested} GB of volume storage in {region.code}, but your storage "
            f"limit there is {limit} GB with {used} GB in use, so {self.free} GB "
            f"{'is' if self.free == 1 else 'are'} free. Ask for a higher limit on the Quotas "
            "page.",
            code="quota_exceeded",
            field="size_gb",
        )

    @property
    def request_url(self) -> str:
        query = urlencode(
            {
                "region": self.region.code,
                "kind": Kind.STORAGE,
                "limit": min(self.used + self.requested, settings.QUOTA_MAX_STORAGE_GB),
            }
        )
        return f"{reverse('quotas:quota_request_new', args=[self.organization.slug])}?{query}"


# --- validation helpers ---------------------------------------------------------------------


def check_limit_number(value, *, field: str, kind: str = Kind.ON_DEMAND) -> int:
    if kind == Kind.STORAGE:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApplicationError("Give the limit as a whole number of GB.", field=field)
        if value < 0:
            raise ApplicationError("A limit cannot be negative.", field=field)
        if value > settings.QUOTA_MAX_STORAGE_GB:
            raise ApplicationError(
                f"A storage limit can be at most {settings.QUOTA_MAX_STORAGE_GB} GB. For more, "
                f"contact {settings.OPERATOR_EMAIL}.",
                field=field,
            )
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApplicationError("Give the limit as a whole number of GPUs.", field=field)
    if value < 0:
        raise ApplicationError("A limit cannot be negative.", field=field)
    if value > settings.QUOTA_MAX_GPUS:
        raise ApplicationError(
            f"A limit can be at most {settings.QUOTA_MAX_GPUS} GPUs. For more, contact "
            f"{settings.OPERATOR_EMAIL} about reserved capacity.",
            field=field,
        )
    return value


def check_kind(kind: str) -> str:
    if kind not in Kind.values:
        raise ApplicationError(
            "Choose the on-demand or the preemptible limit (or the storage limit).", field="kind"
        )
    return kind


def resolve_region(region: Region | str) -> Region:
    if isinstance(region, Region):
        region_obj: Region | None = region
    else:
        region_obj = Region.objects.filter(code=str(region or "").strip()).first()
    if region_obj is None or not region_obj.active:
        raise ApplicationError(f"There is no region {region!s}.", field="region")
    return region_obj


def resolve_gpu_model(gpu_model: GpuModel | str) -> GpuModel:
    if isinstance(gpu_model, GpuModel):
        return gpu_model
    found = GpuModel.objects.filter(code=str(gpu_model or "").strip()).first()
    if found is None:
        raise ApplicationError(f"There is no GPU model {gpu_model!s}.", field="gpu")
    return found


def check_offered(region: Region, gpu_model: GpuModel) -> None:
    offered = InstanceType.objects.filter(active=True, gpu_model=gpu_model, regions=region)
    if not offered.exists():
        raise ApplicationError(
            f"{gpu_model.name} GPUs are not offered in {region.code}. "
            "The catalog shows what each region offers.",
            field="gpu",
        )


def clean_text(text: str, *, field: str, what: str, max_length: int) -> str:
    text = (text or "").strip()
    if not text:
        raise ApplicationError(f"Write {what}.", field=field)
    if len(text) > max_length:
        raise ApplicationError(
            f"Keep it under {max_length} characters; you wrote {len(text)}.", field=field
        )
    return text


def quota_for_update(
    *, organization: Organization, region: Region, gpu_model: GpuModel | None
) -> Quota:
    """The quota row, created with zero limits if missing, locked until the transaction ends.
    `gpu_model` None: the region's storage row."""
    Quota.objects.get_or_create(organization=organization, region=region, gpu_model=gpu_model)
    return (
        Quota.objects.select_for_update(of=("self",))
        .select_related("organization", "region", "gpu_model")
        .get(organization=organization, region=region, gpu_model=gpu_model)
    )


def rule_label(rule: AutoApprovalRule | None) -> str:
    """The audit label of a change nobody made by hand: the rule, or the portal's defaults."""
    return f"automatic rule “{rule.name}”"[:254] if rule is not None else "quota defaults"
