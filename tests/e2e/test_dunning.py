"""An invoice goes unpaid: the customer is reminded by e-mail, then sees launches paused, then
the organization suspended, and everything lifts the moment staff record the payment in admin."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from portal.billing import dunning
from portal.billing.models import Invoice
from portal.instances.models import Instance
from tests.factories import InvoiceFactory, UserFactory
from tests.instances import conftest as instance_fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

catalog = instance_fixtures.catalog
quota = instance_fixtures.quota


def _unpaid_invoice(organization, *, due_days_ago: int) -> Invoice:
    due = timezone.now() - timedelta(days=due_days_ago, hours=1)
    return InvoiceFactory(
        organization=organization,
        number="BF-2026-000042",
        period_start=due - timedelta(days=44),
        period_end=due - timedelta(days=14),
        issued_at=due - timedelta(days=14),
        due_at=due,
        amount=Decimal("120.00"),
    )


def test_an_overdue_invoice_reminds_pauses_suspends_and_payment_lifts_it_all(
    page, browser, browser_context_args, live_server, smtp_sink, login, team, quota, settings, a11y
):
    settings.BILLING_DUNNING_REMINDER_DAYS = (1, 7)
    settings.BILLING_DUNNING_PAUSE_DAYS = 5
    settings.BILLING_DUNNING_SUSPEND_DAYS = 10
    invoice = _unpaid_invoice(team.organization, due_days_ago=2)
    owner = team.owner.user

    # Two days late: one reminder to the owner, with the invoice's link; launches still go.
    assert dunning.dunning_run() == 1
    reminder = smtp_sink.wait_for(to=owner.email, subject_contains="2 days overdue")
    assert "launches pause in 3 days" in reminder.subject
    assert "$120.00 is still unpaid" in reminder.text
    assert "new launches of Acme AI will be refused" in reminder.text
    assert "will be suspended" in reminder.text
    login(page, owner)
    page.goto(smtp_sink.first_link(reminder, contains=f"/billing/invoices/{invoice.pk}"))
    expect(page.get_by_text("BF-2026-000042").first).to_be_visible()
    expect(page.get_by_test_id("hold-banner")).to_have_count(0)
    a11y(page)

    # Six days late: launches paused, told by e-mail, the banner on every page.
    six_days_ago = timezone.now() - timedelta(days=6, hours=1)
    Invoice.objects.filter(pk=invoice.pk).update(due_at=six_days_ago)
    assert dunning.dunning_run() == 1
    paused = smtp_sink.wait_for(to=owner.email, subject_contains="launches are paused")
    assert "6 days overdue" in paused.subject
    page.goto(f"{live_server.url}/o/acme/billing/invoices/{invoice.pk}/")
    banner = page.get_by_test_id("hold-banner")
    expect(banner).to_contain_text("Launches are paused. Invoice BF-2026-000042 ($120.00)")
    page.goto(f"{live_server.url}/o/acme/instances/launch/")
    expect(page.get_by_test_id("launch")).to_be_disabled()
    expect(page.get_by_test_id("launch-blocked")).to_contain_text("BF-2026-000042")

    # Ten days late: suspended, told by e-mail, the reason on every page.
    ten_days_ago = timezone.now() - timedelta(days=10, hours=1)
    Invoice.objects.filter(pk=invoice.pk).update(due_at=ten_days_ago)
    assert dunning.dunning_run() == 2  # the 7-day reminder and the suspension
    suspended = smtp_sink.wait_for(to=owner.email, subject_contains="suspended")
    assert "BF-2026-000042 ($120.00) is 10 days overdue" in suspended.text
    page.goto(f"{live_server.url}/o/acme/instances/")
    suspension = page.locator("[data-testid=hold-banner][data-hold=suspended]")
    expect(suspension).to_contain_text("Acme AI is suspended.")
    expect(suspension).to_contain_text("Pay it to lift the suspension")
    a11y(page)

    # Staff record the bank transfer in admin.
    staff_page = browser.new_context(**browser_context_args).new_page()
    login(staff_page, UserFactory(is_staff=True, is_superuser=True))
    staff_page.goto(f"{live_server.url}/admin/billing/invoice/{invoice.pk}/change/")
    staff_page.get_by_role("link", name="Mark paid").click()
    staff_page.fill("input[name=reference]", "TRX-20261205-7")
    staff_page.get_by_role("button", name="Mark BF-2026-000042 paid").click()
    expect(staff_page.get_by_text("BF-2026-000042 is marked paid.")).to_be_visible()

    # The customer can launch again, no banner left.
    page.goto(f"{live_server.url}/o/acme/instances/launch/")
    expect(page.get_by_test_id("hold-banner")).to_have_count(0)
    expect(page.get_by_test_id("launch")).to_be_enabled()
    assert not Instance.objects.exists()
