"""Automatic approval: which operator rule, if any, approves a request on its own."""

from django.db.models import Q

from portal.capacity.selectors import fleet_free_gpus
from portal.quotas.models import AutoApprovalRule, QuotaRequest
from portal.quotas.standing import Standing, organization_standing


def _capacity_covers(quota_request: QuotaRequest, rule: AutoApprovalRule) -> bool:
    """The increase plus the margin fits in the free GPUs; unknown capacity never does."""
    if quota_request.gpu_model is None:
        return False
    free = fleet_free_gpus(region=quota_request.region, gpu_model=quota_request.gpu_model)
    increase = max(0, quota_request.requested_limit - quota_request.limit_at_submission)
    return free is not None and free >= increase + (rule.capacity_margin or 0)


def rule_matching(quota_request: QuotaRequest) -> AutoApprovalRule | None:
    """The first active rule (by position) that covers the request, or None.

    A rule covers a request for its GPU model (and its region and limit kind, where set) whose
    requested limit is at most the rule's maximum, from an organization that meets the rule's
    conditions of standing and, for a rule with a capacity margin, whose increase the fleet's
    free GPUs of that model in that region cover with the margin to spare.
    """
    if quota_request.gpu_model_id is None:
        return None  # rules are per GPU model: staff decide every storage request
    candidates = (
        AutoApprovalRule.objects.filter(
            active=True,
            gpu_model=quota_request.gpu_model_id,
            max_limit__gte=quota_request.requested_limit,
        )
        .filter(Q(region__isnull=True) | Q(region=quota_request.region_id))
        .filter(Q(kind="") | Q(kind=quota_request.kind))
        .order_by("position", "pk")
    )
    standing: Standing | None = None
    for rule in candidates:
        if rule.require_verified_email or rule.require_no_unpaid_invoice:
            standing = standing or organization_standing(quota_request.organization)
            if rule.require_verified_email and not standing.email_verified:
                continue
            if rule.require_no_unpaid_invoice and standing.unpaid_invoice:
                continue
        if rule.capacity_margin is not None and not _capacity_covers(quota_request, rule):
            continue
        return rule
    return None
