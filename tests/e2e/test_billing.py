"""The demo customer sees this month's spend and the chart; staff issue last month's invoice in
admin; the customer downloads it as a PDF that opens (parsed by poppler's pdftoppm)."""

import re
import shutil
import subprocess
from datetime import timedelta

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from portal.accounts.models import User
from portal.billing import services
from portal.billing.periods import Month
from portal.catalog.models import Image, InstanceType, Region
from portal.demo.management.commands.seed_demo import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    CUSTOMER_EMAIL,
    CUSTOMER_PASSWORD,
)
from portal.instances.models import Instance, InstanceEvent
from portal.orgs.models import Organization

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _instance(organization, name, type_code, *steps):
    instance_type = InstanceType.objects.get(code=type_code)
    instance = Instance.objects.create(
        organization=organization,
        name=name,
        instance_type=instance_type,
        region=Region.objects.get(code="us-east-1"),
        image=Image.objects.first(),
        gpus=instance_type.gpu_count,
        state=steps[-1][1],
    )
    previous = ""
    for at, state in steps:
        InstanceEvent.objects.create(instance=instance, at=at, from_state=previous, to_state=state)
        previous = state
    return instance


@pytest.fixture
def demo_usage():
    """The demo customer's organization with last month's run and an instance running now."""
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    organization = Organization.objects.get(slug="acme-ai")
    now = timezone.now()
    last_month = Month.of(now).previous()
    start = last_month.start + timedelta(days=9, hours=8)
    _instance(
        organization,
        "trainer",
        "gpu_8x_h100",
        (start, "running"),
        (start + timedelta(hours=30), "terminating"),
        (start + timedelta(hours=30, seconds=20), "terminated"),
    )
    _instance(organization, "notebook", "gpu_1x_h100", (now - timedelta(days=2), "running"))
    services.usage_sync_pending()
    return organization, last_month


def test_demo_customer_sees_spend_and_chart_and_downloads_the_invoice_pdf(
    page, browser, browser_context_args, live_server, smtp_sink, login, demo_usage, tmp_path
):
    organization, last_month = demo_usage

    # Staff issue last month's invoices in admin.
    staff_context = browser.new_context(**browser_context_args)
    admin = staff_context.new_page()
    staff = User.objects.get(email=ADMIN_EMAIL)
    staff.totp_secret = generate_totp_secret()  # the operator admin needs two-factor
    TOTP.activate(staff, staff.totp_secret)
    login(admin, staff, ADMIN_PASSWORD)
    admin.goto(f"{live_server.url}/admin/billing/invoice/")
    admin.get_by_role("link", name="Issue invoices for a month").click()
    admin.fill("input[name=month]", last_month.key)
    admin.get_by_role("button", name="Issue invoices for a month").click()
    expect(
        admin.get_by_text(re.compile(r"Issued BF-\d{4}-000001 to Acme AI Research"))
    ).to_be_visible()
    staff_context.close()
    invoice = organization.invoices.get()
    assert invoice.subtotal == 30 * invoice.lines.get().unit_price

    # The demo customer opens Billing from the sidebar.
    customer = User.objects.get(email=CUSTOMER_EMAIL)
    login(page, customer, CUSTOMER_PASSWORD)
    page.goto(f"{live_server.url}/o/acme-ai/")
    page.get_by_role("link", name="Billing").click()
    expect(page.get_by_role("heading", name="Billing", exact=True)).to_be_visible()
    spend = page.get_by_test_id("spend")
    expect(spend).to_contain_text("Spend this month so far")
    expect(spend.locator(".value")).to_have_text(re.compile(r"^\$\d[\d,]*\.\d\d$"))
    assert spend.locator(".value").inner_text() != "$0.00"
    chart = page.get_by_test_id("spend-chart")
    expect(chart.locator("svg")).to_be_visible()
    bars = chart.locator("g.bar")
    assert bars.count() == len(Month.of(timezone.now()).days())
    assert float(chart.locator("g.bar.today").get_attribute("data-value")) > 0
    expect(page.get_by_test_id("per-instance")).to_contain_text("notebook")
    page.screenshot(path=str(tmp_path / "billing.png"), full_page=True)

    # The invoice: listed, opened, downloaded as a PDF that opens.
    page.get_by_role("link", name="Invoices").first.click()
    page.get_by_role("link", name=invoice.number).click()
    expect(page.get_by_test_id("invoice-status")).to_have_text("Open")
    with page.expect_download() as download_info:
        page.get_by_test_id("invoice-pdf").click()
    download = download_info.value
    assert download.suggested_filename == f"{invoice.number}.pdf"
    pdf = tmp_path / "invoice.pdf"
    download.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")
    if shutil.which("pdftoppm"):
        subprocess.run(
            ["pdftoppm", "-png", "-r", "40", str(pdf), str(tmp_path / "page")],
            check=True,
            capture_output=True,
        )
        assert (tmp_path / "page-1.png").stat().st_size > 1000

    mail = smtp_sink.wait_for(to=CUSTOMER_EMAIL, subject_contains=f"Invoice {invoice.number}")
    assert f"/o/acme-ai/billing/invoices/{invoice.pk}/" in mail.text
