"""Quota requests: submitted, answered, withdrawn, and decided by staff or an auto-approval rule.

Lock order, to keep concurrent writers from deadlocking: the request row first, then the quota
row."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from portal.accounts.models import User
from portal.audit.services import audit_record
from portal.catalog.models import GpuModel, Region
from portal.lib.errors import ApplicationError
from portal.notifications.services import notify
from portal.orgs.models import Membership
from portal.quotas import rules, signals
from portal.quotas.models import (
    Author,
    AutoApprovalRule,
    Kind,
    Quota,
    QuotaRequest,
    QuotaRequestMessage,
    QuotaRequestState,
)
from portal.quotas.services.checks import (
    JUSTIFICATION_MAX_LENGTH,
    MESSAGE_MAX_LENGTH,
    Decision,
    amount_text,
    check_kind,
    check_limit_number,
    check_offered,
    clean_text,
    quota_for_update,
    resolve_gpu_model,
    resolve_region,
    rule_label,
)
from portal.quotas.services.limits import quota_limit_set

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
    region = resolve_region(region)
    check_kind(kind)
    storage = kind == Kind.STORAGE
    model = None if storage else resolve_gpu_model(gpu_model or "")
    check_limit_number(requested_limit, field="requested_limit", kind=kind)
    justification = clean_text(
        justification,
        field="justification",
        what=("what the storage is" if storage else "what the GPUs are") + " for and for how long",
        max_length=JUSTIFICATION_MAX_LENGTH,
    )
    if model is not None:
        check_offered(region, model)
    organization = membership.organization
    label = Kind(kind).label.lower()
    in_use = "GB of volumes" if storage else f"{label} {model} GPUs"
    limit_name = "storage limit" if storage else f"{label} limit for {model}"
    with transaction.atomic():
        quota = quota_for_update(organization=organization, region=region, gpu_model=model)
        current, used = quota.limit(kind), quota.used(kind)
        if requested_limit < used:
            raise ApplicationError(
                f"You have {used} {in_use} in use in {region.code}; "
                f"the limit cannot be lower than that. Ask for {used} or more.",
                field="requested_limit",
            )
        if requested_limit == current:
            raise ApplicationError(
                f"Your {limit_name} in {region.code} is already {amount_text(current, kind)}.",
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
    message = clean_text(
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
            f"The organization has {amount_text(used, quota_request.kind)} in use; "
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
        quota = quota_for_update(
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
            actor_label=None if decided_by is not None else rule_label(rule),
            target=quota_request,
            detail={"decision": decision, "state": quota_request.state, "granted": granted},
        )
        notify("quota_request_decided", message_id=step.pk)
        signals.quota_request_decided.send(
            sender=QuotaRequest, quota_request=quota_request, message=message
        )
    return quota_request
