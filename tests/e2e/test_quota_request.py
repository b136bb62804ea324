"""A customer asks for 16 H100 GPUs, staff approve 8 in admin, the customer sees it and is told."""

import re

import pytest
from playwright.sync_api import expect

from portal.quotas.models import Quota, QuotaRequest, QuotaRequestState
from tests.catalog import fixtures
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

gpu_catalog = fixtures.gpu_catalog


def test_customer_asks_for_16_h100_staff_approve_8_customer_sees_the_limit_and_the_mail(
    page, browser, browser_context_args, live_server, smtp_sink, login, team, gpu_catalog, settings
):
    customer = team.owner.user
    staff = UserFactory(email="ops@backfill.example", is_staff=True, is_superuser=True)

    # The customer asks in the portal.
    login(page, customer)
    page.goto(f"{live_server.url}/o/acme/quotas/")
    expect(page.get_by_role("heading", name="Quotas")).to_be_visible()
    page.get_by_test_id("request-quota").click()
    page.select_option("select[name=region]", "us-east-1")
    page.select_option("select[name=gpu]", "h100")
    page.check("input[name=kind][value=on_demand]")
    page.fill("input[name=requested_limit]", "16")
    page.fill("textarea[name=justification]", "Fine-tuning a 70B model for three weeks.")
    page.get_by_role("button", name="Send request").click()
    expect(page.get_by_text(re.compile(r"Request #\d+ is sent"))).to_be_visible()
    expect(page.get_by_test_id("state").first).to_have_text("Submitted")
    quota_request = QuotaRequest.objects.get()
    operators = smtp_sink.wait_for(to=settings.OPERATOR_EMAIL, subject_contains="New quota request")
    assert f"/admin/quotas/quotarequest/{quota_request.pk}/change/" in operators.text

    # Staff approve 8 of the 16 in Django admin.
    staff_context = browser.new_context(**browser_context_args)
    admin = staff_context.new_page()
    login(admin, staff)
    admin.goto(f"{live_server.url}/admin/")
    admin.get_by_role("link", name="Quota requests").click()
    admin.get_by_role("link", name=f"#{quota_request.pk}").click()
    expect(admin.get_by_text("Good standing.")).to_be_visible()
    admin.select_option("select[name=decision]", "approve")
    admin.fill("input[name=grant_limit]", "8")
    admin.fill("textarea[name=decision_message]", "8 now; ask again when they are busy.")
    admin.get_by_role("button", name="Save", exact=True).click()
    expect(admin.get_by_text("was changed successfully")).to_be_visible()
    staff_context.close()

    quota_request.refresh_from_db()
    assert quota_request.state == QuotaRequestState.PARTLY_APPROVED
    assert Quota.objects.get(organization=team.organization).on_demand_limit == 8

    # The customer sees the new limit and the decision.
    page.goto(f"{live_server.url}/o/acme/quotas/")
    row = page.get_by_test_id("limit-us-east-1-h100")
    expect(row.locator("td").nth(2)).to_have_text("8")  # on-demand limit
    expect(row.locator("td").nth(4)).to_contain_text("8")  # free
    page.goto(f"{live_server.url}/o/acme/quotas/requests/{quota_request.pk}/")
    expect(page.get_by_test_id("state")).to_have_text("Partly approved")
    expect(page.get_by_text("8 now; ask again when they are busy.")).to_be_visible()

    mail = smtp_sink.wait_for(to=customer.email, subject_contains="partly approved")
    assert "8 of 16 NVIDIA H100 80GB SXM GPUs in us-east-1" in mail.subject
    assert "is now 8 GPUs" in mail.text and "is now" in mail.html
    assert "8 now; ask again when they are busy." in mail.text
    link = smtp_sink.first_link(mail, contains=f"/quotas/requests/{quota_request.pk}/")
    assert link.startswith(live_server.url)
    smtp_sink.wait_for(to=team.admin.user.email, subject_contains="partly approved")
