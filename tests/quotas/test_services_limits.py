"""Limits change only through quota_limit_set, each change audited; defaults for new orgs."""

import pytest

from portal.lib.errors import ApplicationError
from portal.quotas import services
from portal.quotas.models import Kind, Quota, QuotaChange, QuotaDefault
from portal.quotas.services import Decision
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


def test_a_limit_change_records_who_when_old_new_and_why(team, gpu_catalog, staff):
    services.quota_limit_set(
        organization=team.organization,
        region=gpu_catalog.us_east,
        gpu_model=gpu_catalog.h100,
        kind=Kind.ON_DEMAND,
        limit=8,
        reason="Pilot customer.",
        changed_by=staff,
    )
    services.quota_limit_set(
        organization=team.organization,
        region=gpu_catalog.us_east,
        gpu_model=gpu_catalog.h100,
        kind=Kind.ON_DEMAND,
        limit=2,
        reason="Pilot over.",
        changed_by=staff,
    )
    newest, oldest = QuotaChange.objects.all()
    assert (oldest.old_limit, oldest.new_limit, oldest.reason) == (0, 8, "Pilot customer.")
    assert (newest.old_limit, newest.new_limit, newest.reason) == (8, 2, "Pilot over.")
    assert newest.changed_by == staff and newest.created_at >= oldest.created_at
    assert newest.kind == Kind.ON_DEMAND and newest.quota_request is None
    assert newest.quota.on_demand_limit == 2


def test_setting_the_same_limit_records_nothing(team, gpu_catalog, set_limit):
    set_limit(8)
    set_limit(8)
    assert QuotaChange.objects.count() == 1


@pytest.mark.parametrize(
    ("limit", "reason", "message"),
    [(-1, "x", "negative"), (513, "x", "at most 512"), (8, " ", "why the limit changes")],
)
def test_bad_limits_change_nothing(team, gpu_catalog, limit, reason, message):
    with pytest.raises(ApplicationError, match=message):
        services.quota_limit_set(
            organization=team.organization,
            region=gpu_catalog.us_east,
            gpu_model=gpu_catalog.h100,
            kind=Kind.ON_DEMAND,
            limit=limit,
            reason=reason,
        )
    assert not Quota.objects.exists() and not QuotaChange.objects.exists()


def test_an_approval_is_audited_with_its_request_and_decider(team, gpu_catalog, submit, staff):
    quota_request = submit(requested_limit=16)
    services.quota_request_decide(
        quota_request=quota_request,
        decision=Decision.APPROVE,
        granted_limit=8,
        message="8 for now.",
        decided_by=staff,
    )
    change = QuotaChange.objects.get()
    assert change.quota_request == quota_request
    assert change.changed_by == staff and change.rule is None
    assert (change.old_limit, change.new_limit) == (0, 8)
    assert change.reason == f"Quota request #{quota_request.pk}, Partly approved. 8 for now."


def test_new_organizations_start_with_the_defaults(gpu_catalog):
    QuotaDefault.objects.create(
        region=gpu_catalog.eu_west,
        gpu_model=gpu_catalog.l40s,
        on_demand_limit=2,
        preemptible_limit=4,
    )
    QuotaDefault.objects.create(region=gpu_catalog.us_east, gpu_model=gpu_catalog.h100)  # zero
    organization = OrganizationFactory()
    quotas = {
        (q.region.code, q.gpu_model.code): (q.on_demand_limit, q.preemptible_limit)
        for q in organization.quotas.all()
    }
    assert quotas == {("eu-west-1", "l40s"): (2, 4), ("us-east-1", "h100"): (0, 0)}
    changes = QuotaChange.objects.filter(quota__organization=organization)
    assert sorted(changes.values_list("kind", "old_limit", "new_limit")) == [
        (Kind.ON_DEMAND, 0, 2),
        (Kind.PREEMPTIBLE, 0, 4),
    ]
    assert {c.reason for c in changes} == {"Default limit for new organizations."}
    assert all(c.changed_by is None for c in changes)


def test_defaults_are_for_new_organizations_only_and_apply_once(team, gpu_catalog, set_limit):
    set_limit(1)
    QuotaDefault.objects.create(
        region=gpu_catalog.us_east, gpu_model=gpu_catalog.h100, on_demand_limit=4
    )
    team.organization.name = "Acme AI Labs"
    team.organization.save()  # not a creation
    assert Quota.objects.get(organization=team.organization).on_demand_limit == 1
    services.quota_apply_defaults(organization=team.organization)  # running twice: no change
    assert Quota.objects.get(organization=team.organization).on_demand_limit == 1


def test_an_organization_created_through_the_portal_gets_the_defaults(gpu_catalog, team):
    from portal.orgs.services import organization_create

    QuotaDefault.objects.create(
        region=gpu_catalog.us_east, gpu_model=gpu_catalog.h100, on_demand_limit=1
    )
    organization = organization_create(user=team.member.user, name="Side project")
    assert organization.quotas.get().on_demand_limit == 1
