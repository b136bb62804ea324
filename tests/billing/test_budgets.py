"""Budgets: e-mails at 50, 80 and 100 %, each once a month; the hard limit stops launches."""

import re
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse

from portal.billing import services
from portal.billing.models import Budget, BudgetAlert
from portal.billing.selectors import launch_block_reason
from portal.lib.errors import ApplicationError
from portal.orgs.services import organization_suspend
from tests.billing.conftest import sync, timeline


@pytest.fixture
def running(team, make_instance, clock):
    """One 1x H100 running from March 1 at 2.49 an hour: $59.76 a day."""
    instance = make_instance(team.organization, name="steady")
    timeline(instance, ("2026-03-01 00:00:00", "running"))
    return instance


def check_at(clock, when, instance, team, capture):
    clock.set(when)
    sync(instance)
    with capture(execute=True):
        return services.budget_check(organization=team.organization)


def subjects():
    return [m.subject for m in mail.outbox]


def test_each_threshold_is_emailed_once_a_month(
    team, running, clock, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    Budget.objects.create(
        organization=team.organization, amount=Decimal("1000"), updated_at=clock()
    )
    # $1,000 is reached after 1000 / 2.49 = 401.6 hours (16 d 17 h 36 m).
    assert check_at(clock, "2026-03-08 00:00:00", running, team, capture) == []  # 418.32
    assert check_at(clock, "2026-03-09 09:00:00", running, team, capture) == [50]  # 201 h: 500.49
    assert check_at(clock, "2026-03-09 10:00:00", running, team, capture) == []
    assert check_at(clock, "2026-03-14 10:00:00", running, team, capture) == [80]  # 322 h: 801.78
    assert check_at(clock, "2026-03-17 18:00:00", running, team, capture) == [
        100
    ]  # 402 h: 1,000.98
    assert check_at(clock, "2026-03-25 00:00:00", running, team, capture) == []
    assert subjects() == [
        "[Backfill] Acme AI has used 50 % of its March 2026 budget",
        "[Backfill] Acme AI has used 50 % of its March 2026 budget",
        "[Backfill] Acme AI has used 80 % of its March 2026 budget",
        "[Backfill] Acme AI has used 80 % of its March 2026 budget",
        "[Backfill] Acme AI has used 100 % of its March 2026 budget",
        "[Backfill] Acme AI has used 100 % of its March 2026 budget",
    ]
    assert sorted({m.to[0] for m in mail.outbox}) == sorted(
        [team.owner.user.email, team.billing.user.email]
    )
    assert BudgetAlert.objects.count() == 3
    # A new month starts afresh.
    assert check_at(clock, "2026-04-09 09:00:00", running, team, capture) == [50]


def test_crossing_several_thresholds_at_once_sends_one_email(
    team, running, clock, django_capture_on_commit_callbacks
):
    clock.set("2026-03-20 00:00:00")
    sync(running)
    with django_capture_on_commit_callbacks(execute=True):
        services.budget_set(
            organization=team.organization, amount="100", hard_limit=False, by=team.owner.user
        )
    assert BudgetAlert.objects.count() == 3
    assert subjects() == ["[Backfill] Acme AI has used 100 % of its March 2026 budget"] * 2
    assert "still allowed" in mail.outbox[0].body


def test_the_hard_limit_refuses_launches_and_tells_the_owners(
    team, running, clock, django_capture_on_commit_callbacks
):
    services.budget_set(
        organization=team.organization, amount="500", hard_limit=True, by=team.owner.user
    )
    assert launch_block_reason(organization=team.organization) is None
    clock.set("2026-03-09 09:00:00")  # 201 h: 500.49
    sync(running)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.budget_check(organization=team.organization) == [50, 80, 100]
    assert subjects()[0] == "[Backfill] Budget reached: new launches of Acme AI are paused"
    assert "new launches are now refused" in mail.outbox[0].body
    assert launch_block_reason(organization=team.organization) == (
        "Launches are paused: spend this month ($500.49) has reached the hard budget limit of "
        "$500.00. An owner, admin or billing member can raise the budget or turn off the hard "
        "limit on the Budget page."
    )
    services.budget_set(
        organization=team.organization, amount="750", hard_limit=True, by=team.owner.user
    )
    assert launch_block_reason(organization=team.organization) is None


def test_a_soft_budget_never_blocks(team, running, clock):
    services.budget_set(organization=team.organization, amount="10", hard_limit=False, by=None)
    clock.set("2026-03-30 00:00:00")
    sync(running)
    assert launch_block_reason(organization=team.organization) is None


def test_checking_every_budget_skips_organizations_without_one(
    team, outsider, running, clock, django_capture_on_commit_callbacks
):
    Budget.objects.create(organization=team.organization, amount=Decimal("100"), updated_at=clock())
    clock.set("2026-03-03 00:00:00")  # 119.52
    sync(running)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.budgets_check_all() == 1
        assert services.budgets_check_all() == 0
    assert len(mail.outbox) == 2


@pytest.mark.parametrize("amount", ["-1", "abc", "0", "", None])
def test_budget_input_is_checked_by_the_service(team, amount, clock):
    Budget.objects.create(organization=team.organization, amount=Decimal("300"), updated_at=clock())
    if amount in ("", None):  # empty removes the budget
        assert (
            services.budget_set(
                organization=team.organization, amount=amount, hard_limit=True, by=None
            )
            is None
        )
        assert not Budget.objects.exists()
        return
    with pytest.raises(ApplicationError):
        services.budget_set(organization=team.organization, amount=amount, hard_limit=True, by=None)
    assert Budget.objects.get().amount == Decimal("300")


def test_each_threshold_fires_the_budget_webhook_once(team, running, clock):
    from portal.webhooks.models import WebhookDelivery, WebhookEndpoint

    WebhookEndpoint.objects.create(
        organization=team.organization,
        url="https://hooks.example.com/backfill",
        event_types=["budget.threshold"],
        secret_encrypted="x",
        secret_hint="x",
    )
    services.budget_set(organization=team.organization, amount="100", hard_limit=False, by=None)
    clock.set("2026-03-02 00:00:00")  # 24 h: 59.76
    sync(running)
    services.budget_check(organization=team.organization)
    services.budget_check(organization=team.organization)
    clock.set("2026-03-03 00:00:00")  # 48 h: 119.52
    sync(running)
    services.budget_check(organization=team.organization)
    assert WebhookDelivery.objects.filter(event_type="budget.threshold").count() == 3


def test_the_billing_page_banners_the_holds_as_every_page_does(
    team, running, clock, client_for, staff
):
    services.budget_set(
        organization=team.organization, amount="500", hard_limit=True, by=team.owner.user
    )
    clock.set("2026-03-09 09:00:00")  # 500.49 spent: the hard limit is reached
    sync(running)
    client = client_for(team.owner.user)
    billing_page = reverse("billing:overview", args=[team.organization.slug])

    def banners(url: str) -> list[str]:
        return re.findall(r'data-testid="hold-banner" data-hold="(\w+)"', client.get(url).text)

    reason = launch_block_reason(organization=team.organization)
    assert reason is not None and "$500.49" in reason
    shown = "S" + reason.removeprefix("Launches are paused: s")  # under the banner's heading
    for url in (billing_page, reverse("instances:list", args=[team.organization.slug])):
        assert banners(url) == ["billing"]
        text = client.get(url).text
        assert f"Launches are paused.</strong>\n        {shown}" in text
    # The kinds the page did not read itself are still asked: a suspension shows too.
    organization_suspend(organization=team.organization, reason="Abuse report.", by=staff)
    assert sorted(banners(billing_page)) == ["billing", "suspended"]
    services.budget_set(
        organization=team.organization, amount="750", hard_limit=True, by=team.owner.user
    )
    assert banners(billing_page) == ["suspended"]
