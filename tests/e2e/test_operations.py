"""The operator's side in the browser: staff suspend an organization and create a reservation
in admin, look at the overview and the audit log; the customer sees the reservation and the
suspension. Screenshots go to $SHOTS_DIR when it is set."""

import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from portal.billing.models import UsageInterval
from portal.instances.models import Instance, State
from portal.orgs.models import Suspension
from portal.reservations import services
from portal.reservations.models import Reservation
from tests.factories import UserFactory
from tests.operations.conftest import store_fleet

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

from tests.instances import conftest as instance_fixtures  # noqa: E402

catalog = instance_fixtures.catalog
quota = instance_fixtures.quota
ssh_key = instance_fixtures.ssh_key


def shot(page, name: str) -> None:
    folder = os.environ.get("SHOTS_DIR")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_staff_reserve_and_suspend_the_customer_sees_it(
    page, browser, browser_context_args, live_server, login, team, outsider, catalog, quota
):
    staff = UserFactory(email="ops@backfill.example", is_staff=True, is_superuser=True)
    store_fleet(us_h100_free=40)
    now = timezone.now()
    for org, name, state, gpus in (
        (team.organization, "train-1", State.RUNNING, 8),
        (outsider.organization, "spot-7", State.RUNNING, 1),
        (outsider.organization, "broken-2", State.FAILED, 1),
    ):
        instance = Instance.objects.create(
            organization=org,
            name=name,
            state=state,
            gpus=gpus,
            preemptible=name.startswith("spot"),
            instance_type=catalog.h100_8x if gpus == 8 else catalog.h100_1x,
            region=catalog.us_east,
            image=catalog.ubuntu,
            state_reason="Failed to boot: hardware fault." if state == State.FAILED else "",
        )
        UsageInterval.objects.create(
            instance=instance,
            organization=org,
            instance_type=instance.instance_type,
            region=catalog.us_east,
            gpus=gpus,
            kind="on_demand",
            start=now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3),
            end=now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1),
            unit_price=Decimal("19.92") if gpus == 8 else Decimal("2.49"),
        )

    admin = browser.new_context(**browser_context_args).new_page()
    login(admin, staff)

    # A reservation through the admin form.
    admin.goto(f"{live_server.url}/admin/reservations/reservation/create/")
    admin.select_option("select[name=organization]", str(team.organization.pk))
    admin.select_option("select[name=region]", str(catalog.us_east.pk))
    admin.select_option("select[name=gpu_model]", str(catalog.h100.pk))
    admin.fill("input[name=gpus]", "16")
    start = now - timedelta(days=1)
    admin.fill("input[name=start]", start.strftime("%Y-%m-%dT%H:%M"))
    admin.fill("input[name=end]", (start + timedelta(days=90)).strftime("%Y-%m-%dT%H:%M"))
    admin.fill("input[name=price_per_gpu_hour]", "1.85")
    admin.get_by_role("button", name="Reserve capacity").click()
    expect(admin.get_by_text("created.")).to_be_visible()
    reservation = Reservation.objects.get()

    # The overview, from the admin index.
    admin.goto(f"{live_server.url}/admin/")
    admin.get_by_role("link", name="Operator overview").click()
    fleet = admin.get_by_test_id("fleet")
    expect(fleet).to_contain_text("NVIDIA H100 80GB")
    expect(admin.get_by_test_id("failed")).to_contain_text("broken-2")
    expect(admin.get_by_test_id("spenders")).to_contain_text("Acme AI")
    shot(admin, "overview")

    # Suspend the rival through the organizations list's action.
    admin.goto(f"{live_server.url}/admin/orgs/organization/")
    admin.locator(f"input[name=_selected_action][value='{outsider.organization.pk}']").check()
    admin.select_option("select[name=action]", "suspend_organization")
    admin.get_by_role("button", name="Go").click()
    admin.fill("textarea[name=reason]", "Chargeback on the card on file; write to billing@.")
    admin.get_by_role("button", name="Suspend an organization").click()
    expect(admin.get_by_text("is suspended; its owners were e-mailed")).to_be_visible()
    assert Suspension.objects.get().organization == outsider.organization

    # The audit log in admin shows both, by staff.
    admin.goto(f"{live_server.url}/admin/audit/auditentry/")
    expect(admin.get_by_text("Organization suspended").first).to_be_visible()
    shot(admin, "audit_admin")

    # The customer: reservations page and audit log page.
    login(page, team.owner.user)
    page.goto(f"{live_server.url}/o/acme/reservations/")
    expect(page.get_by_test_id("reservations")).to_contain_text(f"R-{reservation.pk}")
    expect(page.get_by_test_id("reservations")).to_contain_text("Active")
    page.select_option("select[name=gpu_model]", "h100")
    page.select_option("select[name=region]", "us-east-1")
    page.fill("input[name=gpus]", "32")
    page.fill("input[name=months]", "6")
    page.fill("textarea[name=note]", "Pre-training from next month.")
    page.get_by_role("button", name="Ask for a quote").click()
    expect(page.get_by_text("is sent")).to_be_visible()
    request = team.organization.reservation_requests.get()
    services.reservation_request_quote(
        reservation_request=request, price_per_gpu_hour="1.79", by=staff
    )
    page.reload()
    expect(page.get_by_test_id("quote")).to_contain_text("1.79")
    shot(page, "reservation_request")
    page.get_by_test_id("accept").click()
    expect(page.get_by_text("Accepted: reservation")).to_be_visible()
    page.goto(f"{live_server.url}/o/acme/reservations/")
    shot(page, "reservations")
    page.goto(f"{live_server.url}/o/acme/audit/")
    expect(page.get_by_test_id("audit-entries")).to_contain_text("Reservation quote accepted")
    shot(page, "audit_customer")

    # The suspended rival's owner is refused at launch, with the reason.
    rival = browser.new_context(**browser_context_args).new_page()
    login(rival, outsider.user)
    rival.goto(f"{live_server.url}/o/rival/reservations/")
    expect(rival.get_by_test_id("suspended")).to_contain_text("Chargeback")
    shot(rival, "suspended_customer")
