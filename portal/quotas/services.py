"""Writes for quotas: limits and their audit, requests and decisions, reserving GPUs for launches.

Lock order, to keep concurrent writers from deadlocking: a quota request row first, then the
quota row. Reserving and releasing lock only the quota row.
"""

import logging
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from portal.accounts.models import User
from portal.audit.services import audit_record
from portal.catalog.models import GpuModel, InstanceType, Region
from portal.lib.errors import ApplicationError
from portal.notifications.services import notify
from portal.orgs.models import Membership, Organization
from portal.quotas import rules, signals, sync
from portal.quotas.models import (
    Author,
    AutoApprovalRule,
    Kind,
    Quota,
    QuotaChange,
    QuotaDefault,
    QuotaRequest,
    QuotaRequestMessage,
    QuotaRequestState,
    kind_of,
    unit_of,
)

logger = logging.getLogger(__name__)

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


def _amount(n: int, kind: str) -> str:
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


def _check_kind(kind: str) -> str:
    if kind not in Kind.values:
        raise ApplicationError(
            "Choose the on-demand or the preemptible limit (or the storage limit).", field="kind"
        )
    return kind


def _resolve_region(region: Region | str) -> Region:
    if isinstance(region, Region):
        region_obj: Region | None = region
    else:
        region_obj = Region.objects.filter(code=str(region or "").strip()).first()
    if region_obj is None or not region_obj.active:
        raise ApplicationError(f"There is no region {region!s}.", field="region")
    return region_obj


def _resolve_gpu_model(gpu_model: GpuModel | str) -> GpuModel:
    if isinstance(gpu_model, GpuModel):
        return gpu_model
    found = GpuModel.objects.filter(code=str(gpu_model or "").strip()).first()
    if found is None:
        raise ApplicationError(f"There is no GPU model {gpu_model!s}.", field="gpu")
    return found


def _check_offered(region: Region, gpu_model: GpuModel) -> None:
    offered = InstanceType.objects.filter(active=True, gpu_model=gpu_model, regions=region)
    if not offered.exists():
        raise ApplicationError(
            f"{gpu_model.name} GPUs are not offered in {region.code}. "
            "The catalog shows what each region offers.",
            field="gpu",
        )


def _clean_text(text: str, *, field: str, what: str, max_length: int) -> str:
    text = (text or "").strip()
    if not text:
        raise ApplicationError(f"Write {what}.", field=field)
    if len(text) > max_length:
        raise ApplicationError(
            f"Keep it under {max_length} characters; you wrote {len(text)}.", field=field
        )
    return text


def _quota_for_update(
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


# --- limits -----------------------------------------------------------------------------------


@transaction.atomic
def quota_limit_set(
    *,
    organization: Organization,
    region: Region,
    gpu_model: GpuModel | None,
    kind: str,
    limit: int,
    reason: str,
    changed_by: User | None = None,
    rule: AutoApprovalRule | None = None,
    quota_request: QuotaRequest | None = None,
) -> Quota:
    """Set one limit and record the change (who, old, new, why). Setting the same value is a no-op.

    A limit may be set below what is in use (staff may want to stop new launches); running
    instances are not touched, there is just nothing free until use falls under the limit.
    """
    _check_kind(kind)
    if (kind == Kind.STORAGE) != (gpu_model is None):
        raise ApplicationError("A storage limit has no GPU model; a GPU limit has one.")
    check_limit_number(limit, field="limit", kind=kind)
    reason = _clean_text(reason, field="reason", what="why the limit changes", max_length=2000)
    quota = _quota_for_update(organization=organization, region=region, gpu_model=gpu_model)
    old = quota.limit(kind)
    if old == limit:
        return quota
    setattr(quota, Quota.limit_field(kind), limit)
    quota.save(update_fields=[Quota.limit_field(kind), "updated_at"])
    QuotaChange.objects.create(
        quota=quota,
        kind=kind,
        old_limit=old,
        new_limit=limit,
        changed_by=changed_by,
        rule=rule,
        reason=reason,
        quota_request=quota_request,
    )
    audit_record(
        action="quota.limit_changed",
        organization=organization,
        actor=changed_by,
        actor_kind="staff" if changed_by is not None else None,
        actor_label=None if changed_by is not None else _rule_label(rule),
        target=quota,
        detail={"kind": kind, "from": old, "to": limit, "reason": reason},
    )
    # The backend's own limit follows (the slurm driver's account); a no-op for the others.
    if gpu_model is not None:
        sync.enqueue_mirror(organization_id=organization.pk, gpu_model=gpu_model.code)
    logger.info(
        "quota limit %s %s/%s %s: %s -> %s",
        organization.slug,
        region.code,
        gpu_model.code if gpu_model is not None else "storage",
        kind,
        old,
        limit,
    )
    return quota


@transaction.atomic
def quota_apply_defaults(*, organization: Organization) -> list[Quota]:
    """Give a new organization the operator's default limits. Running it twice changes nothing."""
    quotas = []
    for default in QuotaDefault.objects.select_related("region", "gpu_model"):
        if Quota.objects.filter(
            organization=organization, region=default.region, gpu_model=default.gpu_model
        ).exists():
            continue
        for kind, limit in (
            (Kind.ON_DEMAND, default.on_demand_limit),
            (Kind.PREEMPTIBLE, default.preemptible_limit),
        ):
            quota = quota_limit_set(
                organization=organization,
                region=default.region,
                gpu_model=default.gpu_model,
                kind=kind,
                limit=limit,
                reason="Default limit for new organizations.",
            )
        quotas.append(quota)
    return quotas


# --- reserving GPUs for launches ---------------------------------------------------------------


@transaction.atomic
def quota_reserve(
    *,
    organization: Organization,
    region: Region,
    gpu_model: GpuModel,
    gpus: int,
    preemptible: bool,
    allowance: int = 0,
) -> None:
    """Count `gpus` against the limit, or raise QuotaExceeded and count nothing.

    The quota row is locked until the caller's transaction ends, so concurrent launches
    queue here and can never exceed a limit together. Call it in the same transaction that
    records the launch, before any backend call. `allowance`: GPUs on top of the limit (a
    reservation in force of the organization, see portal.reservations).
    """
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise ApplicationError("A launch takes at least one GPU.", code="invalid_gpus")
    kind = kind_of(preemptible)
    if allowance:
        _quota_for_update(organization=organization, region=region, gpu_model=gpu_model)
    quota = (
        Quota.objects.select_for_update(of=("self",))
        .filter(organization=organization, region=region, gpu_model=gpu_model)
        .first()
    )
    limit = (quota.limit(kind) if quota else 0) + allowance
    used = quota.used(kind) if quota else 0
    if quota is None or used + gpus > limit:
        raise QuotaExceeded(
            organization=organization,
            region=region,
            gpu_model=gpu_model,
            preemptible=preemptible,
            requested=gpus,
            limit=limit,
            used=used,
        )
    setattr(quota, Quota.used_field(kind), used + gpus)
    quota.save(update_fields=[Quota.used_field(kind), "updated_at"])


@transaction.atomic
def quota_release(
    *, organization: Organization, region: Region, gpu_model: GpuModel, gpus: int, preemptible: bool
) -> None:
    """Give back `gpus` reserved by quota_reserve (on termination). Use never falls below zero."""
    if gpus <= 0:
        return
    kind = kind_of(preemptible)
    quota = (
        Quota.objects.select_for_update(of=("self",))
        .filter(organization=organization, region=region, gpu_model=gpu_model)
        .first()
    )
    if quota is None:
        logger.warning(
            "quota_release of %s GPUs without a quota row: %s %s/%s",
            gpus,
            organization.slug,
            region.code,
            gpu_model.code,
        )
        return
    used = quota.used(kind)
    if gpus > used:
        logger.warning(
            "quota_release of %s %s GPUs but only %s in use: %s %s/%s",
            gpus,
            kind,
            used,
            organization.slug,
            region.code,
            gpu_model.code,
        )
    setattr(quota, Quota.used_field(kind), max(0, used - gpus))
    quota.save(update_fields=[Quota.used_field(kind), "updated_at"])


# --- reserving storage for volumes --------------------------------------------------------------


@transaction.atomic
def quota_storage_reserve(*, organization: Organization, region: Region, gb: int) -> None:
    """Count `gb` of volume storage against the region's storage limit, or raise
    StorageQuotaExceeded and count nothing. Locks the row like `quota_reserve`: call it in the
    transaction that records the volume (or its growth), before any backend call."""
    if isinstance(gb, bool) or not isinstance(gb, int) or gb < 1:
        raise ApplicationError("A volume takes at least 1 GB.", field="size_gb")
    quota = (
        Quota.objects.select_for_update(of=("self",))
        .filter(organization=organization, region=region, gpu_model=None)
        .first()
    )
    limit = quota.storage_limit_gb if quota else 0
    used = quota.storage_used_gb if quota else 0
    if quota is None or used + gb > limit:
        raise StorageQuotaExceeded(
            organization=organization, region=region, requested=gb, limit=limit, used=used
        )
    quota.storage_used_gb = used + gb
    quota.save(update_fields=["storage_used_gb", "updated_at"])


@transaction.atomic
def quota_storage_release(*, organization: Organization, region: Region, gb: int) -> None:
    """Give back `gb` counted by quota_storage_reserve (a deleted volume). Never below zero."""
    if gb <= 0:
        return
    quota = (
        Quota.objects.select_for_update(of=("self",))
        .filter(organization=organization, region=region, gpu_model=None)
        .first()
    )
    if quota is None:
        logger.warning("quota_storage_release of %s GB without a row: %s", gb, organization.slug)
        return
    quota.storage_used_gb = max(0, quota.storage_used_gb - gb)
    quota.save(update_fields=["storage_used_gb", "updated_at"])


# --- requests -----------------------------------------------------------------------------------


def _check_may_request(membership: Membership) -> None:
    if not membership.can("quotas.request"):
        raise ApplicationError(
            "Only owners and admins of the organization can ask for quota.", code="forbidden"
        )


def _check_same_organization(membership: Membership, quota_request: QuotaRequest) -> None:
    if membership.organization_id != quota_request.organization_id:
        raise ApplicationError("There is no such quota request.", code="not_found")


def quota_request_submit(
    *,
    membership: Membership,
    region: Region | str,
    gpu_model: GpuModel | str | None,
    kind: str,
    requested_limit: int,
    justification: str,
) -> QuotaRequest:
    """Ask for a new limit. A matching automatic rule approves it at once.

    Staff (OPERATOR_EMAIL) hear of every new request, the organization's owners and admins of
    an automatic decision; both after commit.
    """
    _check_may_request(membership)
    region = _resolve_region(region)
    _check_kind(kind)
    storage = kind == Kind.STORAGE
    model = None if storage else _resolve_gpu_model(gpu_model or "")
    check_limit_number(requested_limit, field="requested_limit", kind=kind)
    justification = _clean_text(
        justification,
        field="justification",
        what=("what the storage is" if storage else "what the GPUs are") + " for and for how long",
        max_length=JUSTIFICATION_MAX_LENGTH,
    )
    if model is not None:
        _check_offered(region, model)
    organization = membership.organization
    label = Kind(kind).label.lower()
    in_use = "GB of volumes" if storage else f"{label} {model} GPUs"
    limit_name = "storage limit" if storage else f"{label} limit for {model}"
    with transaction.atomic():
        quota = _quota_for_update(organization=organization, region=region, gpu_model=model)
        current, used = quota.limit(kind), quota.used(kind)
        if requested_limit < used:
            raise ApplicationError(
                f"You have {used} {in_use} in use in {region.code}; "
                f"the limit cannot be lower than that. Ask for {used} or more.",
                field="requested_limit",
            )
        if requested_limit == current:
            raise ApplicationError(
                f"Your {limit_name} in {region.code} is already {_amount(current, kind)}.",
                field="requested_limit",
            )
        open_request = (
            QuotaRequest.objects.open()
            .filter(organization=organization, region=region, gpu_model=model, kind=kind)
            .first()
        )
        if open_request is not None:
            raise ApplicationError(
                f"Request #{open_request.pk} for this limit is still open "
                f"({open_request.get_state_display().lower()}). Answer or withdraw it first.",
                code="duplicate",
            )
        quota_request = QuotaRequest.objects.create(
            organization=organization,
            region=region,
            gpu_model=model,
            kind=kind,
            limit_at_submission=current,
            requested_limit=requested_limit,
            justification=justification,
            created_by=membership.user,
        )
        pk = quota_request.pk
        audit_record(
            action="quota.request_submitted",
            organization=organization,
            actor=membership,
            target=quota_request,
            detail={"kind": kind, "from": current, "requested": requested_limit},
        )
        notify("quota_request_submitted", quota_request_id=pk)
        rule = rules.rule_matching(quota_request)
        if rule is not None:
            quota_request = quota_request_decide(
                quota_request=quota_request,
                decision=Decision.APPROVE,
                granted_limit=requested_limit,
                message=f"Approved automatically by the rule “{rule.name}”.",
                rule=rule,
            )
    return quota_request


@transaction.atomic
def quota_request_answer(
    *, membership: Membership, quota_request: QuotaRequest, message: str
) -> QuotaRequest:
    """The customer's answer to staff's question; the request goes back to the review queue."""
    _check_may_request(membership)
    _check_same_organization(membership, quota_request)
    message = _clean_text(
        message, field="message", what="your answer", max_length=MESSAGE_MAX_LENGTH
    )
    quota_request = QuotaRequest.objects.select_for_update().get(pk=quota_request.pk)
    if quota_request.state != QuotaRequestState.MORE_INFO_NEEDED:
        raise ApplicationError(
            "This request is not waiting for an answer "
            f"(it is {quota_request.get_state_display().lower()}).",
            code="invalid_state",
        )
    quota_request.state = QuotaRequestState.SUBMITTED
    quota_request.save(update_fields=["state"])
    answer = QuotaRequestMessage.objects.create(
        quota_request=quota_request,
        author=Author.CUSTOMER,
        user=membership.user,
        state=QuotaRequestState.SUBMITTED,
        body=message,
    )
    notify("quota_request_answered", message_id=answer.pk)
    return quota_request


@transaction.atomic
def quota_request_withdraw(*, membership: Membership, quota_request: QuotaRequest) -> QuotaRequest:
    _check_may_request(membership)
    _check_same_organization(membership, quota_request)
    quota_request = QuotaRequest.objects.select_for_update().get(pk=quota_request.pk)
    if not quota_request.is_open:
        raise ApplicationError(
            f"This request is already {quota_request.get_state_display().lower()}.",
            code="invalid_state",
        )
    quota_request.state = QuotaRequestState.WITHDRAWN
    quota_request.save(update_fields=["state"])
    QuotaRequestMessage.objects.create(
        quota_request=quota_request,
        author=Author.CUSTOMER,
        user=membership.user,
        state=QuotaRequestState.WITHDRAWN,
    )
    return quota_request


def decision_validate(
    *,
    quota_request: QuotaRequest,
    quota: Quota,
    decision: str,
    granted_limit: int | None,
    message: str,
) -> int | None:
    """The rules of a decision, in one place for the service and the admin form.

    Returns the limit to grant (for an approval) or None; raises ApplicationError.
    """
    if not quota_request.is_open:
        decided = quota_request.get_state_display().lower()
        by = f" by {quota_request.decider}" if quota_request.decider else ""
        raise ApplicationError(
            f"Request #{quota_request.pk} is already {decided}{by}; it cannot be decided again.",
            code="invalid_state",
        )
    if decision not in (Decision.APPROVE, Decision.DENY, Decision.MORE_INFO):
        raise ApplicationError(
            "Choose approve, deny or ask for more information.", field="decision"
        )
    if len(message or "") > MESSAGE_MAX_LENGTH:
        raise ApplicationError(
            f"Keep the message under {MESSAGE_MAX_LENGTH} characters.", field="message"
        )
    if decision == Decision.MORE_INFO:
        if quota_request.state == QuotaRequestState.MORE_INFO_NEEDED:
            raise ApplicationError(
                "This request is already waiting for the customer's answer.", code="invalid_state"
            )
        if not (message or "").strip():
            raise ApplicationError("Write the question for the customer.", field="message")
        return None
    if decision == Decision.DENY:
        return None
    requested = quota_request.requested_limit
    granted = requested if granted_limit is None else granted_limit
    check_limit_number(granted, field="granted_limit", kind=quota_request.kind)
    current, used = quota.limit(quota_request.kind), quota.used(quota_request.kind)
    if granted < used:
        raise ApplicationError(
            f"The organization has {_amount(used, quota_request.kind)} in use; "
            "grant at least that.",
            field="granted_limit",
        )
    if requested == current:  # staff set the limit meanwhile: approving changes nothing
        lowest = highest = requested
    elif requested > current:  # an increase: grant more than now, at most what was asked
        lowest, highest = current + 1, requested
    else:  # a decrease: grant less than now, at least what was asked
        lowest, highest = requested, current - 1
    if not lowest <= granted <= highest:
        raise ApplicationError(
            f"The limit is {current} and {requested} was asked: grant "
            + (f"{lowest}" if lowest == highest else f"from {lowest} to {highest}")
            + ", or deny the request.",
            field="granted_limit",
        )
    return granted


def quota_request_decide(
    *,
    quota_request: QuotaRequest,
    decision: str,
    granted_limit: int | None = None,
    message: str = "",
    decided_by: User | None = None,
    rule: AutoApprovalRule | None = None,
) -> QuotaRequest:
    """Approve (fully or partly), deny, or ask for more information, by staff or by a rule.

    An approval sets the limit in the same transaction. The organization's owners and admins
    get an e-mail after commit.
    """
    if (decided_by is None) == (rule is None):
        raise ValueError("A decision is made by a staff user or by a rule, exactly one.")
    if decided_by is not None and not decided_by.is_staff:
        raise ApplicationError("Only operator staff decide quota requests.", code="forbidden")
    message = (message or "").strip()
    with transaction.atomic():
        quota_request = (
            QuotaRequest.objects.select_for_update(of=("self",))
            .select_related("organization", "region", "gpu_model")
            .get(pk=quota_request.pk)
        )
        quota = _quota_for_update(
            organization=quota_request.organization,
            region=quota_request.region,
            gpu_model=quota_request.gpu_model,
        )
        granted = decision_validate(
            quota_request=quota_request,
            quota=quota,
            decision=decision,
            granted_limit=granted_limit,
            message=message,
        )
        fields = ["state"]
        if decision == Decision.MORE_INFO:
            quota_request.state = QuotaRequestState.MORE_INFO_NEEDED
        else:
            quota_request.decided_at = timezone.now()
            quota_request.decided_by = decided_by
            quota_request.decided_by_rule = rule
            fields += ["decided_at", "decided_by", "decided_by_rule"]
            if decision == Decision.DENY:
                quota_request.state = QuotaRequestState.DENIED
            else:
                assert granted is not None
                quota_request.state = (
                    QuotaRequestState.APPROVED
                    if granted == quota_request.requested_limit
                    else QuotaRequestState.PARTLY_APPROVED
                )
                quota_request.granted_limit = granted
                fields.append("granted_limit")
        quota_request.save(update_fields=fields)
        if granted is not None:
            reason = f"Quota request #{quota_request.pk}, {quota_request.get_state_display()}."
            if message:
                reason += f" {message}"
            quota_limit_set(
                organization=quota_request.organization,
                region=quota_request.region,
                gpu_model=quota_request.gpu_model,
                kind=quota_request.kind,
                limit=granted,
                reason=reason,
                changed_by=decided_by,
                rule=rule,
                quota_request=quota_request,
            )
        step = QuotaRequestMessage.objects.create(
            quota_request=quota_request,
            author=Author.RULE if rule else Author.STAFF,
            user=decided_by,
            rule=rule,
            state=quota_request.state,
            body=message,
        )
        audit_record(
            action="quota.decided",
            organization=quota_request.organization,
            actor=decided_by,
            actor_kind="staff" if decided_by is not None else None,
            actor_label=None if decided_by is not None else _rule_label(rule),
            target=quota_request,
            detail={"decision": decision, "state": quota_request.state, "granted": granted},
        )
        notify("quota_request_decided", message_id=step.pk)
        signals.quota_request_decided.send(
            sender=QuotaRequest, quota_request=quota_request, message=message
        )
    return quota_request


def _rule_label(rule: AutoApprovalRule | None) -> str:
    """The audit label of a change nobody made by hand: the rule, or the portal's defaults."""
    return f"automatic rule “{rule.name}”"[:254] if rule is not None else "quota defaults"
