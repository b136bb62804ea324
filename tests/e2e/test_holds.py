"""What a customer sees when launches are held: the operator's suspension, and a reached hard
budget limit set by the owner in the browser. A banner with the reason on every page; the
launch button disabled with the reason before anyone submits. axe-core on each page.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from portal.billing.budget_stops import budget_stops_due
from portal.instances import lifecycle
from portal.instances.models import State
from portal.orgs.services import organization_suspend
from portal.reclaims.services import policy_get
from tests.factories import UserFactory
from tests.instances import conftest as instance_fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

catalog = instance_fixtures.catalog
quota = instance_fixtures.quota
make_instance = instance_fixtures.make_instance


def test_a_suspension_banner_on_every_page_and_launch_disabled(
    page, live_server, login, team, quota, a11y
):
    organization_suspend(
        organization=team.organization,
        reason="Payment card declined twice.",
        by=UserFactory(is_staff=True),
    )
    login(page, team.member.user)
    for path in ("/o/acme/", "/o/acme/instances/", "/o/acme/catalog/"):
        page.goto(f"{live_server.url}{path}")
        banner = page.get_by_test_id("hold-banner")
        expect(banner).to_contain_text("Acme AI is suspended.")
        expect(banner).to_contain_text("Payment card declined twice.")
        a11y(page)

    page.goto(f"{live_server.url}/o/acme/instances/launch/")
    expect(page.get_by_test_id("launch")).to_be_disabled()
    expect(page.get_by_test_id("launch-blocked")).to_contain_text("Payment card declined twice.")
    a11y(page)


def test_a_budget_hard_limit_that_stops_instances_warns_on_their_page_then_stops_them(
    page, live_server, login, team, make_instance, smtp_sink, settings
):
    settings.RECLAIM_MIN_NOTICE_SECONDS = 3
    policy = policy_get()
    policy.notice_seconds = 3  # the reclaim notice, shortened for the test
    policy.save()
    box = make_instance(State.PROVISIONING, backend_id="m-box", name="trainer")
    lifecycle.mark_running(box.pk, at=timezone.now() - timedelta(hours=1))  # $2.49 so far
    login(page, team.owner.user)
    page.goto(f"{live_server.url}/o/acme/billing/budget/")
    form = page.get_by_test_id("budget-form")
    form.get_by_label("Monthly amount").fill("2.00")
    form.get_by_label("Hard limit: refuse new launches once the budget is reached").check()
    form.get_by_label("With the hard limit, also stop running instances").check()
    form.get_by_role("button", name="Save budget").click()

    told = smtp_sink.wait_for(to=team.owner.user.email, subject_contains="1 running instance stops")
    assert "- trainer (1x H100 80GB in us-east-1)" in told.text
    page.goto(f"{live_server.url}/o/acme/instances/{box.pk}/")
    notice = page.get_by_test_id("budget-stop")
    expect(notice).to_contain_text("The monthly budget's hard limit was reached.")
    expect(notice).to_contain_text("Backfill stops this instance at")
    expect(notice.get_by_role("link", name="raise the budget")).to_be_visible()
    expect(page.get_by_test_id("state").first).to_have_text("Running")

    page.wait_for_timeout(3_000)  # the notice runs out; the task at its end does this:
    assert budget_stops_due() == [box.pk]
    expect(page.get_by_test_id("state").first).to_have_text("Stopping", timeout=15_000)
    expect(notice).to_have_count(0)
    expect(page.get_by_test_id("timeline")).to_contain_text("Stopped: the monthly budget's")


def test_a_budget_hard_limit_reached_pauses_launches(
    page, live_server, login, team, make_instance, a11y
):
    spent = make_instance(State.PROVISIONING, backend_id="m-spent")
    lifecycle.mark_running(spent.pk, at=timezone.now() - timedelta(hours=1))  # $2.49 so far
    login(page, team.owner.user)
    page.goto(f"{live_server.url}/o/acme/billing/budget/")
    a11y(page)
    form = page.get_by_test_id("budget-form")
    form.get_by_label("Monthly amount").fill("1.00")
    form.get_by_label("Hard limit: refuse new launches once the budget is reached").check()
    form.get_by_role("button", name="Save budget").click()

    banner = page.get_by_test_id("hold-banner")
    expect(banner).to_contain_text("Launches are paused.")
    expect(banner).to_contain_text("reached the hard budget limit of $1.00")
    a11y(page)
    page.goto(f"{live_server.url}/o/acme/instances/launch/")
    expect(page.get_by_test_id("launch")).to_be_disabled()
    expect(page.get_by_test_id("launch-blocked")).to_contain_text("hard budget limit")
    a11y(page)
