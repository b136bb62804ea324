"""Automatic approval: which operator rule, if any, approves a request on its own."""

from django.db.models import Q

from portal.quotas.models import AutoApprovalRule, QuotaRequest
from portal.quotas.standing import Standing, organization_standing


def rule_matching(quota_request: QuotaRequest) -> AutoApprovalRule | None:
    """The first active rule (by position) that covers the request, or None.

    A rule covers a request for its GPU model (and its region and limit kind, where set) whose
    requested limit is at most the rule's maximum, from an organization that meets the rule's
    conditions of standing.
    """
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
        return rule
    return None
