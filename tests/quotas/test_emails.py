"""Who gets which e-mail about a quota request, with what in it, and only after commit."""

import pytest
from django.core import mail

from portal.lib.errors import ApplicationError
from portal.quotas import services
from portal.quotas.models import AutoApprovalRule, Kind
from portal.quotas.services import Decision

pytestmark = pytest.mark.django_db

OPERATORS = "operators@backfill.example"


@pytest.fixture(autouse=True)
def _operator_address(settings):
    settings.OPERATOR_EMAIL = OPERATORS


def by_recipient() -> dict:
    return {message.to[0]: message for message in mail.outbox}


def html_of(message) -> str:
    return message.alternatives[0][0]


def owners_and_admins(team) -> set[str]:
    return {team.owner.user.email, team.admin.user.email}


def test_a_new_request_goes_to_the_operators_with_an_admin_link(
    team, gpu_catalog, submit, committed
):
    with committed():
        quota_request = submit(by=team.admin, requested_limit=16)
    assert list(by_recipient()) == [OPERATORS]
    message = mail.outbox[0]
    assert message.subject == (
        f"[Backfill] New quota request #{quota_request.pk}: Acme AI asks for 16 on-demand "
        "NVIDIA H100 80GB SXM GPUs in us-east-1"
    )
    link = f"http://testserver/admin/quotas/quotarequest/{quota_request.pk}/change/"
    for body in (message.body, html_of(message)):
        assert team.admin.user.email in body
        assert "Fine-tuning a 70B model for three weeks" in body
        assert "The limit now is 0" in body
        assert link in body
        assert "What to do next" in body


def test_nothing_is_sent_when_the_request_is_refused_or_rolled_back(
    team, gpu_catalog, submit, committed
):
    with committed(), pytest.raises(ApplicationError):
        submit(requested_limit=-5)
    assert mail.outbox == []
    submit()  # not committed: the test's transaction never commits
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("decision", "granted", "message", "subject", "says"),
    [
        (
            Decision.APPROVE,
            None,
            "",
            "Quota request #{pk} approved: 16 on-demand NVIDIA H100 80GB SXM GPUs in us-east-1",
            ["APPROVED", "is now 16 GPUs", "you can launch instances up to the new limit now"],
        ),
        (
            Decision.APPROVE,
            8,
            "8 now, more when capacity frees up.",
            "Quota request #{pk} partly approved: 8 of 16 NVIDIA H100 80GB SXM GPUs in us-east-1",
            [
                "PARTLY APPROVED",
                "We granted 8 of the 16 GPUs",
                "is now 8 GPUs",
                "8 now, more when capacity frees up.",
                "send a new request once you use",
            ],
        ),
        (
            Decision.DENY,
            None,
            "No H100 capacity this quarter.",
            "Quota request #{pk} denied: NVIDIA H100 80GB SXM GPUs in us-east-1",
            [
                "DENIED",
                "stays at 0 GPUs",
                "No H100 capacity this quarter.",
                "send a new request with more detail",
            ],
        ),
        (
            Decision.MORE_INFO,
            None,
            "Which model do you train, and for how long?",
            "Quota request #{pk} needs more information",
            [
                "MORE INFORMATION NEEDED",
                "Which model do you train, and for how long?",
                "answer on the request page",
                "Answer the question",
            ],
        ),
    ],
)
def test_each_decision_goes_to_owners_and_admins(
    team, gpu_catalog, submit, staff, committed, decision, granted, message, subject, says
):
    quota_request = submit(requested_limit=16)
    with committed():
        services.quota_request_decide(
            quota_request=quota_request,
            decision=decision,
            granted_limit=granted,
            message=message,
            decided_by=staff,
        )
    sent = by_recipient()
    assert set(sent) == owners_and_admins(team)  # not member, billing, viewer, nor operators
    link = f"http://testserver/o/acme/quotas/requests/{quota_request.pk}/"
    for mail_message in sent.values():
        assert mail_message.subject == "[Backfill] " + subject.format(pk=quota_request.pk)
        text, html = mail_message.body, html_of(mail_message)
        assert "asked for a on-demand limit" not in text
        assert "asked for a limit of 16 on-demand NVIDIA H100 80GB SXM GPUs" in text
        assert "What to do next" in text and "What to do next" in html
        assert link in text and link in html
        for phrase in says:
            assert phrase in text or phrase in html, phrase


def test_an_answer_goes_to_the_operators(team, gpu_catalog, submit, staff, committed):
    quota_request = submit()
    services.quota_request_decide(
        quota_request=quota_request, decision=Decision.MORE_INFO, message="Why?", decided_by=staff
    )
    with committed():
        services.quota_request_answer(
            membership=team.owner, quota_request=quota_request, message="Because <science>."
        )
    message = mail.outbox[-1]
    assert message.to == [OPERATORS]
    assert message.subject == f"[Backfill] Quota request #{quota_request.pk} answered by Acme AI"
    assert "Because <science>." in message.body  # plain text is not HTML-escaped
    assert "Because &lt;science&gt;." in html_of(message)
    assert f"/admin/quotas/quotarequest/{quota_request.pk}/change/" in message.body


def test_an_automatic_approval_tells_the_operators_and_the_customer(
    team, gpu_catalog, submit, committed
):
    AutoApprovalRule.objects.create(name="Small H100", gpu_model=gpu_catalog.h100, max_limit=8)
    with committed():
        quota_request = submit(kind=Kind.PREEMPTIBLE, requested_limit=4)
    sent = by_recipient()
    assert set(sent) == owners_and_admins(team) | {OPERATORS}
    assert sent[OPERATORS].subject.startswith(
        f"[Backfill] Quota request #{quota_request.pk} approved by a rule"
    )
    assert 'The automatic rule "Small H100" approved it' in sent[OPERATORS].body
    customer = sent[team.owner.user.email]
    assert "approved: 4 preemptible" in customer.subject
    assert "Approved automatically by the rule “Small H100”." in customer.body


def test_a_withdrawal_sends_nothing(team, gpu_catalog, submit, committed):
    quota_request = submit()
    with committed():
        services.quota_request_withdraw(membership=team.owner, quota_request=quota_request)
    assert mail.outbox == []
