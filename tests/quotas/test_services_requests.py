"""Quota requests: every state change, and every bad input refused with nothing changed."""

import pytest
from django.core import mail

from portal.lib.errors import ApplicationError
from portal.quotas import services
from portal.quotas.models import (
    Author,
    Kind,
    Quota,
    QuotaChange,
    QuotaRequest,
    QuotaRequestMessage,
    QuotaRequestState,
)
from portal.quotas.services import Decision

pytestmark = pytest.mark.django_db


def snapshot():
    """Everything a refused action must leave as it was."""
    return (
        list(QuotaRequest.objects.order_by("pk").values()),
        list(Quota.objects.order_by("pk").values()),
        QuotaChange.objects.count(),
        QuotaRequestMessage.objects.count(),
        len(mail.outbox),
    )


def limit_of(team, gpu_catalog, kind=Kind.ON_DEMAND) -> int:
    quota = Quota.objects.filter(
        organization=team.organization, region=gpu_catalog.us_east, gpu_model=gpu_catalog.h100
    ).first()
    return quota.limit(kind) if quota else 0


# --- submit ---


def test_submit_records_the_request_in_state_submitted(team, gpu_catalog, submit, set_limit):
    set_limit(4)
    quota_request = submit(by=team.admin, requested_limit=16)
    assert quota_request.state == QuotaRequestState.SUBMITTED
    assert quota_request.organization == team.organization
    assert quota_request.created_by == team.admin.user
    assert quota_request.limit_at_submission == 4
    assert quota_request.requested_limit == 16
    assert quota_request.granted_limit is None
    assert limit_of(team, gpu_catalog) == 4  # nothing changes before a decision


def test_submit_accepts_codes_as_well_as_objects(team, gpu_catalog):
    quota_request = services.quota_request_submit(
        membership=team.owner,
        region="eu-west-1",
        gpu_model="l40s",
        kind="preemptible",
        requested_limit=4,
        justification="Batch inference.",
    )
    assert (quota_request.region, quota_request.gpu_model) == (
        gpu_catalog.eu_west,
        gpu_catalog.l40s,
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"requested_limit": -1}, "cannot be negative"),
        ({"requested_limit": 513}, "at most 512 GPUs"),
        ({"requested_limit": 10**9}, "at most 512 GPUs"),
        ({"requested_limit": "16"}, "whole number"),
        ({"region": "mars-1"}, "There is no region mars-1"),
        ({"region": "ap-old-1"}, "There is no region ap-old-1"),
        ({"gpu_model": "tpu-v5"}, "There is no GPU model tpu-v5"),
        ({"gpu_model": "a100"}, "not offered in us-east-1"),
        ({"kind": "spot"}, "on-demand or the preemptible"),
        ({"justification": "   "}, "Write what the GPUs are for"),
        ({"justification": "x" * 4001}, "under 4000 characters"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(team, gpu_catalog, submit, changes, message):
    before = snapshot()
    with pytest.raises(ApplicationError, match=message):
        submit(**changes)
    assert snapshot() == before


def test_the_operator_maximum_comes_from_settings(team, gpu_catalog, submit, settings):
    settings.QUOTA_MAX_GPUS = 8
    with pytest.raises(ApplicationError, match="at most 8 GPUs"):
        submit(requested_limit=9)
    assert submit(requested_limit=8).requested_limit == 8


def test_a_request_below_current_use_is_refused(team, gpu_catalog, submit, set_limit):
    set_limit(8)
    services.quota_reserve(
        organization=team.organization,
        region=gpu_catalog.us_east,
        gpu_model=gpu_catalog.h100,
        gpus=6,
        preemptible=False,
    )
    before = snapshot()
    in_use = "You have 6 on-demand NVIDIA H100 80GB SXM GPUs in use in us-east-1; the limit"
    with pytest.raises(ApplicationError, match=in_use) as error:
        submit(requested_limit=5)
    assert error.value.field == "requested_limit"
    assert snapshot() == before
    assert submit(requested_limit=6).requested_limit == 6  # lowering to the use is fine


def test_asking_for_the_current_limit_is_refused(team, gpu_catalog, submit, set_limit):
    set_limit(8)
    with pytest.raises(ApplicationError, match="already 8 GPUs"):
        submit(requested_limit=8)


@pytest.mark.parametrize("role", ["member", "billing", "viewer"])
def test_roles_without_quotas_request_cannot_ask(team, gpu_catalog, submit, role):
    before = snapshot()
    with pytest.raises(ApplicationError, match="Only owners and admins") as error:
        submit(by=team.by_role(role))
    assert error.value.code == "forbidden"
    assert snapshot() == before


def test_a_second_open_request_for_the_same_limit_is_refused(team, gpu_catalog, submit, staff):
    first = submit(requested_limit=16)
    before = snapshot()
    with pytest.raises(ApplicationError, match=f"Request #{first.pk} for this limit is still open"):
        submit(by=team.admin, requested_limit=32)
    assert snapshot() == before
    # Still open while waiting for the customer's answer.
    services.quota_request_decide(
        quota_request=first, decision=Decision.MORE_INFO, message="For how long?", decided_by=staff
    )
    with pytest.raises(ApplicationError, match="still open"):
        submit(requested_limit=32)
    # Other limits are independent: the preemptible limit, another region, another GPU model.
    submit(kind=Kind.PREEMPTIBLE)
    submit(region=gpu_catalog.eu_west)
    submit(gpu_model=gpu_catalog.l40s, region=gpu_catalog.eu_west)
    # Once the first is closed, a new one may be sent.
    services.quota_request_withdraw(membership=team.owner, quota_request=first)
    assert submit(requested_limit=32).state == QuotaRequestState.SUBMITTED


def test_the_database_refuses_two_open_requests_for_one_limit(team, gpu_catalog, submit):
    from django.db import IntegrityError

    first = submit()
    with pytest.raises(IntegrityError):
        QuotaRequest.objects.create(
            organization=first.organization,
            region=first.region,
            gpu_model=first.gpu_model,
            kind=first.kind,
            limit_at_submission=0,
            requested_limit=3,
            justification="x",
        )


# --- decide ---


def test_approve_grants_what_was_asked_and_sets_the_limit(team, gpu_catalog, submit, staff):
    quota_request = submit(requested_limit=16)
    decided = services.quota_request_decide(
        quota_request=quota_request, decision=Decision.APPROVE, message="Enjoy.", decided_by=staff
    )
    assert decided.state == QuotaRequestState.APPROVED
    assert decided.granted_limit == 16
    assert decided.decided_by == staff and decided.decided_at is not None
    assert limit_of(team, gpu_catalog) == 16
    assert limit_of(team, gpu_catalog, Kind.PREEMPTIBLE) == 0
    step = decided.messages.get()
    assert (step.author, step.user, step.state, step.body) == (
        Author.STAFF,
        staff,
        QuotaRequestState.APPROVED,
        "Enjoy.",
    )


def test_approve_less_than_asked_is_a_partial_approval(team, gpu_catalog, submit, staff, set_limit):
    set_limit(4)
    quota_request = submit(requested_limit=16)
    decided = services.quota_request_decide(
        quota_request=quota_request, decision=Decision.APPROVE, granted_limit=8, decided_by=staff
    )
    assert decided.state == QuotaRequestState.PARTLY_APPROVED
    assert decided.granted_limit == 8
    assert limit_of(team, gpu_catalog) == 8


def test_a_preemptible_request_changes_only_the_preemptible_limit(
    team, gpu_catalog, submit, staff, set_limit
):
    set_limit(2)
    quota_request = submit(kind=Kind.PREEMPTIBLE, requested_limit=24)
    services.quota_request_decide(
        quota_request=quota_request, decision=Decision.APPROVE, decided_by=staff
    )
    assert limit_of(team, gpu_catalog, Kind.PREEMPTIBLE) == 24
    assert limit_of(team, gpu_catalog, Kind.ON_DEMAND) == 2


def test_a_decrease_can_be_approved(team, gpu_catalog, submit, staff, set_limit):
    set_limit(16)
    quota_request = submit(requested_limit=4)
    services.quota_request_decide(
        quota_request=quota_request, decision=Decision.APPROVE, decided_by=staff
    )
    assert limit_of(team, gpu_catalog) == 4


def test_deny_leaves_the_limit(team, gpu_catalog, submit, staff, set_limit):
    set_limit(4)
    quota_request = submit(requested_limit=64)
    decided = services.quota_request_decide(
        quota_request=quota_request,
        decision=Decision.DENY,
        message="Not this month.",
        decided_by=staff,
    )
    assert decided.state == QuotaRequestState.DENIED
    assert decided.granted_limit is None
    assert limit_of(team, gpu_catalog) == 4
    assert QuotaChange.objects.filter(quota_request=decided).count() == 0


def test_more_info_then_answer_goes_back_to_submitted_then_a_decision(
    team, gpu_catalog, submit, staff
):
    quota_request = submit(requested_limit=16)
    asked = services.quota_request_decide(
        quota_request=quota_request,
        decision=Decision.MORE_INFO,
        message="Which model, and for how long?",
        decided_by=staff,
    )
    assert asked.state == QuotaRequestState.MORE_INFO_NEEDED
    assert asked.decided_at is None  # a question is not a decision
    answered = services.quota_request_answer(
        membership=team.admin, quota_request=asked, message="Llama 70B, three weeks."
    )
    assert answered.state == QuotaRequestState.SUBMITTED
    decided = services.quota_request_decide(
        quota_request=answered, decision=Decision.APPROVE, granted_limit=8, decided_by=staff
    )
    assert decided.state == QuotaRequestState.PARTLY_APPROVED
    steps = list(decided.messages.values_list("author", "state", "body"))
    assert steps == [
        (Author.STAFF, QuotaRequestState.MORE_INFO_NEEDED, "Which model, and for how long?"),
        (Author.CUSTOMER, QuotaRequestState.SUBMITTED, "Llama 70B, three weeks."),
        (Author.STAFF, QuotaRequestState.PARTLY_APPROVED, ""),
    ]


def test_staff_may_decide_while_waiting_for_an_answer(team, gpu_catalog, submit, staff):
    quota_request = submit()
    services.quota_request_decide(
        quota_request=quota_request, decision=Decision.MORE_INFO, message="Why?", decided_by=staff
    )
    decided = services.quota_request_decide(
        quota_request=quota_request, decision=Decision.DENY, decided_by=staff
    )
    assert decided.state == QuotaRequestState.DENIED


@pytest.mark.parametrize("first", [Decision.APPROVE, Decision.DENY])
@pytest.mark.parametrize("second", [Decision.APPROVE, Decision.DENY, Decision.MORE_INFO])
def test_a_decided_request_cannot_be_decided_again(team, gpu_catalog, submit, staff, first, second):
    quota_request = submit(requested_limit=16)
    services.quota_request_decide(quota_request=quota_request, decision=first, decided_by=staff)
    before = snapshot()
    with pytest.raises(ApplicationError, match="cannot be decided again") as error:
        services.quota_request_decide(
            quota_request=quota_request, decision=second, message="Again?", decided_by=staff
        )
    assert error.value.code == "invalid_state"
    assert snapshot() == before


def test_a_withdrawn_request_cannot_be_decided(team, gpu_catalog, submit, staff):
    quota_request = submit()
    services.quota_request_withdraw(membership=team.owner, quota_request=quota_request)
    with pytest.raises(ApplicationError, match="already withdrawn"):
        services.quota_request_decide(
            quota_request=quota_request, decision=Decision.APPROVE, decided_by=staff
        )


@pytest.mark.parametrize(
    ("granted", "message"),
    [
        (-1, "cannot be negative"),
        (600, "at most 512"),
        (17, "grant from 5 to 16"),
        (4, "grant from 5 to 16"),
        (3, "grant at least that"),
    ],
)
def test_a_grant_outside_the_request_is_refused(
    team, gpu_catalog, submit, staff, set_limit, granted, message
):
    set_limit(4)
    services.quota_reserve(
        organization=team.organization,
        region=gpu_catalog.us_east,
        gpu_model=gpu_catalog.h100,
        gpus=4,
        preemptible=False,
    )
    quota_request = submit(requested_limit=16)
    before = snapshot()
    with pytest.raises(ApplicationError, match=message):
        services.quota_request_decide(
            quota_request=quota_request,
            decision=Decision.APPROVE,
            granted_limit=granted,
            decided_by=staff,
        )
    assert snapshot() == before


def test_asking_for_more_information_needs_a_question(team, gpu_catalog, submit, staff):
    quota_request = submit()
    with pytest.raises(ApplicationError, match="Write the question"):
        services.quota_request_decide(
            quota_request=quota_request, decision=Decision.MORE_INFO, message=" ", decided_by=staff
        )
    services.quota_request_decide(
        quota_request=quota_request, decision=Decision.MORE_INFO, message="Why?", decided_by=staff
    )
    with pytest.raises(ApplicationError, match="already waiting"):
        services.quota_request_decide(
            quota_request=quota_request,
            decision=Decision.MORE_INFO,
            message="Why?",
            decided_by=staff,
        )


def test_an_unknown_decision_is_refused(team, gpu_catalog, submit, staff):
    with pytest.raises(ApplicationError, match="Choose approve, deny"):
        services.quota_request_decide(quota_request=submit(), decision="maybe", decided_by=staff)


def test_only_staff_decide(team, gpu_catalog, submit):
    quota_request = submit()
    before = snapshot()
    with pytest.raises(ApplicationError, match="Only operator staff"):
        services.quota_request_decide(
            quota_request=quota_request, decision=Decision.APPROVE, decided_by=team.owner.user
        )
    assert snapshot() == before
    with pytest.raises(ValueError):
        services.quota_request_decide(quota_request=quota_request, decision=Decision.APPROVE)


# --- answer and withdraw ---


def test_answer_only_when_staff_asked(team, gpu_catalog, submit):
    quota_request = submit()
    before = snapshot()
    with pytest.raises(ApplicationError, match="not waiting for an answer"):
        services.quota_request_answer(
            membership=team.owner, quota_request=quota_request, message="Hi"
        )
    assert snapshot() == before


def test_answer_needs_text_and_the_right_role(team, gpu_catalog, submit, staff):
    quota_request = submit()
    services.quota_request_decide(
        quota_request=quota_request, decision=Decision.MORE_INFO, message="Why?", decided_by=staff
    )
    with pytest.raises(ApplicationError, match="Write your answer"):
        services.quota_request_answer(
            membership=team.owner, quota_request=quota_request, message=""
        )
    with pytest.raises(ApplicationError, match="Only owners and admins"):
        services.quota_request_answer(
            membership=team.member, quota_request=quota_request, message="Because."
        )
    quota_request.refresh_from_db()
    assert quota_request.state == QuotaRequestState.MORE_INFO_NEEDED


@pytest.mark.parametrize("ask_first", [False, True])
def test_withdraw_an_open_request(team, gpu_catalog, submit, staff, ask_first):
    quota_request = submit()
    if ask_first:
        services.quota_request_decide(
            quota_request=quota_request,
            decision=Decision.MORE_INFO,
            message="Why?",
            decided_by=staff,
        )
    withdrawn = services.quota_request_withdraw(membership=team.admin, quota_request=quota_request)
    assert withdrawn.state == QuotaRequestState.WITHDRAWN
    assert withdrawn.messages.last().state == QuotaRequestState.WITHDRAWN
    assert limit_of(team, gpu_catalog) == 0


def test_withdraw_a_closed_request_is_refused(team, gpu_catalog, submit, staff):
    quota_request = submit()
    services.quota_request_decide(
        quota_request=quota_request, decision=Decision.DENY, decided_by=staff
    )
    with pytest.raises(ApplicationError, match="already denied"):
        services.quota_request_withdraw(membership=team.owner, quota_request=quota_request)


def test_withdraw_needs_the_right_role_and_organization(team, outsider, gpu_catalog, submit):
    quota_request = submit()
    with pytest.raises(ApplicationError, match="Only owners and admins"):
        services.quota_request_withdraw(membership=team.viewer, quota_request=quota_request)
    with pytest.raises(ApplicationError, match="no such quota request"):
        services.quota_request_withdraw(membership=outsider, quota_request=quota_request)
    with pytest.raises(ApplicationError, match="no such quota request"):
        services.quota_request_answer(membership=outsider, quota_request=quota_request, message="x")
    quota_request.refresh_from_db()
    assert quota_request.state == QuotaRequestState.SUBMITTED
