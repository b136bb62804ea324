"""Capacity-aware automatic approval, and the fleet's free GPUs next to a quota request."""

import pytest
from django.urls import reverse

from portal.quotas import services as quotas
from portal.quotas.models import AutoApprovalRule, Kind, QuotaRequestState
from tests.operations.conftest import store_fleet

pytestmark = pytest.mark.django_db


@pytest.fixture
def rule(catalog):
    return AutoApprovalRule.objects.create(
        name="H100 while there is room",
        gpu_model=catalog.h100,
        max_limit=64,
        require_verified_email=False,
        require_no_unpaid_invoice=False,
        capacity_margin=8,
    )


def submit(team, catalog, limit):
    return quotas.quota_request_submit(
        membership=team.owner,
        region=catalog.us_east,
        gpu_model=catalog.h100,
        kind=Kind.ON_DEMAND,
        requested_limit=limit,
        justification="Training.",
    )


@pytest.mark.parametrize(
    ("free", "asked", "approved"),
    [(24, 16, True), (23, 16, False), (64, 56, True), (0, 1, False)],
)
def test_the_rule_needs_the_increase_plus_the_margin_free(
    team, catalog, rule, free, asked, approved
):
    store_fleet(us_h100_free=free)
    request = submit(team, catalog, asked)
    assert (request.state == QuotaRequestState.APPROVED) is approved


def test_unknown_capacity_never_approves_on_its_own(team, catalog, rule):
    request = submit(team, catalog, 1)
    assert request.state == QuotaRequestState.SUBMITTED


def test_without_a_margin_capacity_is_not_looked_at(team, catalog, rule):
    rule.capacity_margin = None
    rule.save()
    assert submit(team, catalog, 16).state == QuotaRequestState.APPROVED


def test_staff_see_the_free_capacity_next_to_the_request(team, catalog, staff, client):
    store_fleet(us_h100_free=40)
    request = submit(team, catalog, 16)
    client.force_login(staff)
    page = client.get(reverse("admin:quotas_quotarequest_change", args=[request.pk]))
    assert "Free in the fleet" in page.content.decode()
    assert "40 of 64 NVIDIA H100 80GB GPUs free in us-east-1" in page.content.decode()
