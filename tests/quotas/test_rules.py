"""Automatic approval rules: which fire, which don't, and that the firing rule is the decider."""

import pytest
from allauth.account.models import EmailAddress

from portal.quotas import standing
from portal.quotas.models import Author, AutoApprovalRule, Kind, QuotaChange, QuotaRequestState

pytestmark = pytest.mark.django_db


@pytest.fixture
def rule(gpu_catalog):
    return AutoApprovalRule.objects.create(
        name="Small H100", gpu_model=gpu_catalog.h100, max_limit=8
    )


def test_a_matching_rule_approves_at_once_and_records_itself(team, gpu_catalog, submit, rule):
    quota_request = submit(requested_limit=8)
    assert quota_request.state == QuotaRequestState.APPROVED
    assert quota_request.granted_limit == 8
    assert quota_request.decided_by_rule == rule and quota_request.decided_by is None
    assert quota_request.decider == "automatic rule “Small H100”"
    change = QuotaChange.objects.get()
    assert (
        change.rule == rule and change.changed_by is None and change.quota_request == quota_request
    )
    assert change.new_limit == 8
    step = quota_request.messages.get()
    assert (step.author, step.rule, step.state) == (Author.RULE, rule, QuotaRequestState.APPROVED)
    assert "Small H100" in step.body


def test_more_than_the_rule_allows_waits_for_staff(team, gpu_catalog, submit, rule):
    assert submit(requested_limit=9).state == QuotaRequestState.SUBMITTED
    assert not QuotaChange.objects.exists()


def test_a_rule_is_for_its_gpu_model_region_and_kind(team, gpu_catalog, submit, rule):
    rule.region = gpu_catalog.eu_west
    rule.kind = Kind.PREEMPTIBLE
    rule.save()
    assert submit(requested_limit=4).state == QuotaRequestState.SUBMITTED  # us-east-1, on-demand
    assert (
        submit(region=gpu_catalog.eu_west, requested_limit=4).state == QuotaRequestState.SUBMITTED
    )  # on-demand
    assert (
        submit(region=gpu_catalog.eu_west, kind=Kind.PREEMPTIBLE, requested_limit=4).state
        == QuotaRequestState.APPROVED
    )
    assert (
        submit(gpu_model=gpu_catalog.l40s, region=gpu_catalog.eu_west, requested_limit=1).state
        == QuotaRequestState.SUBMITTED
    )


def test_an_inactive_rule_never_fires(team, gpu_catalog, submit, rule):
    rule.active = False
    rule.save()
    assert submit(requested_limit=1).state == QuotaRequestState.SUBMITTED


def test_no_verified_owner_address_no_automatic_approval(team, gpu_catalog, submit, rule):
    EmailAddress.objects.filter(user=team.owner.user).update(verified=False)
    # An admin's verified address does not count: the rule asks for an owner's.
    assert submit(by=team.admin, requested_limit=4).state == QuotaRequestState.SUBMITTED


def test_an_unpaid_invoice_stops_automatic_approval(team, gpu_catalog, submit, rule, monkeypatch):
    monkeypatch.setattr(standing, "organization_has_unpaid_invoice", lambda organization: True)
    assert submit(requested_limit=4).state == QuotaRequestState.SUBMITTED


def test_a_rule_without_conditions_ignores_standing(team, gpu_catalog, submit, rule, monkeypatch):
    rule.require_verified_email = False
    rule.require_no_unpaid_invoice = False
    rule.save()
    EmailAddress.objects.update(verified=False)
    monkeypatch.setattr(standing, "organization_has_unpaid_invoice", lambda organization: True)
    assert submit(requested_limit=4).state == QuotaRequestState.APPROVED


def test_the_first_rule_by_position_decides(team, gpu_catalog, submit, rule):
    first = AutoApprovalRule.objects.create(
        name="US H100",
        gpu_model=gpu_catalog.h100,
        region=gpu_catalog.us_east,
        max_limit=4,
        position=1,
    )
    assert submit(requested_limit=4).decided_by_rule == first


def test_there_are_no_unpaid_invoices_until_billing_exists(team):
    assert standing.organization_has_unpaid_invoice(team.organization) is False
    assert standing.organization_standing(team.organization).good
