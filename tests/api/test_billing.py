"""/usage/ and /invoices/: read-only, from portal.billing's selectors, for billing roles."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.billing import services
from portal.billing.periods import Month
from portal.catalog.models import Price
from portal.instances.models import Instance, InstanceEvent, State
from tests.api.conftest import assert_error
from tests.factories import InvoiceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def last_month():
    return Month.of(timezone.now()).previous()


@pytest.fixture
def used(team, catalog, last_month):
    """One H100 that ran ten hours last month, at 3.00 an hour."""
    Price.objects.create(
        instance_type=catalog.h100_1x,
        valid_from=last_month.start - timedelta(days=400),
        on_demand_hourly=Decimal("3.00"),
        preemptible_hourly=Decimal("1.50"),
    )
    Price.objects.filter(instance_type=catalog.h100_1x, on_demand_hourly=Decimal("2.49")).update(
        valid_from=timezone.now() + timedelta(days=1000)
    )
    instance = Instance.objects.create(
        organization=team.organization,
        name="trainer",
        instance_type=catalog.h100_1x,
        region=catalog.us_east,
        image=catalog.ubuntu,
        gpus=1,
        state=State.TERMINATED,
    )
    start = last_month.start + timedelta(days=2)
    for offset, (from_state, to_state) in enumerate(
        [("", "pending"), ("pending", "provisioning"), ("provisioning", "running")]
    ):
        InstanceEvent.objects.create(
            instance=instance,
            at=start + timedelta(seconds=offset),
            from_state=from_state,
            to_state=to_state,
        )
    InstanceEvent.objects.create(
        instance=instance,
        at=start + timedelta(seconds=2, hours=10),
        from_state="running",
        to_state="terminating",
    )
    InstanceEvent.objects.create(
        instance=instance,
        at=start + timedelta(seconds=3, hours=10),
        from_state="terminating",
        to_state="terminated",
    )
    services.usage_sync_instance(instance_id=instance.pk)
    return instance


def test_usage_of_a_month(team, api_as, used, last_month):
    response = api_as(team.billing).get("/usage/", {"month": last_month.key})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["month"] == last_month.key and body["currency"] == "USD"
    assert body["spend"] == "30.00"
    assert body["forecast"] is None  # only for the current month
    line = body["lines"][0]
    assert (line["instance_type"], line["region"], line["kind"]) == (
        "gpu_1x_h100",
        "us-east-1",
        "on_demand",
    )
    assert line["seconds"] == 36000 and line["amount"] == "30.00"
    assert line["unit_price"] == "3.0000"
    assert body["instances"][0]["name"] == "trainer"


def test_usage_defaults_to_this_month(team, api_as, used):
    body = api_as(team.owner).get("/usage/").json()

    assert body["month"] == Month.of(timezone.now()).key
    assert body["spend"] == "0.00" and body["lines"] == []
    assert body["forecast"] is not None


@pytest.mark.parametrize("month", ["2026-13", "26-01", "1999-01", "next", "2999-01"])
def test_a_bad_or_future_month_is_400(team, api_as, month):
    error = assert_error(api_as(team.owner).get("/usage/", {"month": month}), 400)
    assert "month" in error["details"]


def test_invoices_list_and_detail(team, api_as, used, last_month):
    invoice = services.invoice_issue(organization=team.organization, month=last_month)
    api = api_as(team.billing)

    listed = api.get("/invoices/").json()
    detail = api.get(f"/invoices/{invoice.pk}/").json()

    assert listed["count"] == 1 and listed["results"][0]["number"] == invoice.number
    assert detail["total"] == "30.00" and detail["month"] == last_month.key
    assert detail["status"] == "Open" and detail["balance_due"] == "30.00"
    assert detail["lines"][0]["amount"] == "30.00" and detail["lines"][0]["seconds"] == 36000


def test_another_organizations_invoice_is_404(team, outsider, api_as, catalog, last_month):
    theirs = _invoice_for(outsider, catalog, last_month)

    assert_error(api_as(team.owner).get(f"/invoices/{theirs.pk}/"), 404, "not_found")
    assert api_as(team.owner).get("/invoices/").json()["count"] == 0


def _invoice_for(membership, catalog, month):
    return InvoiceFactory(
        organization=membership.organization,
        number=f"T-{membership.pk}",
        month=month.first_day,
        period_start=month.start,
        period_end=month.end,
    )


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_roles_without_billing_are_403(team, api_as, role):
    api = api_as(team.by_role(role))

    assert_error(api.get("/usage/"), 403, "forbidden")
    assert_error(api.get("/invoices/"), 403, "forbidden")


def test_invoice_pdf_and_csv_downloads(team, api_as, used, last_month):
    invoice = services.invoice_issue(organization=team.organization, month=last_month)
    api = api_as(team.billing)

    pdf = api.get(f"/invoices/{invoice.pk}/pdf/", headers={"Accept": "application/pdf"})
    csv = api.get(f"/invoices/{invoice.pk}/csv/")

    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    assert f'filename="{invoice.number}' in pdf["Content-Disposition"]
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    assert "30.00" in csv.content.decode()


def test_a_download_that_fails_answers_json_whatever_was_accepted(team, outsider, api_as, catalog):
    theirs = _invoice_for(outsider, catalog, Month.of(timezone.now()).previous())
    api = api_as(team.owner)

    assert_error(api.get(f"/invoices/{theirs.pk}/pdf/", headers={"Accept": "application/pdf"}), 404)
    assert_error(api_as(team.viewer).get(f"/invoices/{theirs.pk}/csv/"), 403, "forbidden")


def test_usage_csv_of_a_month(team, api_as, used, last_month):
    response = api_as(team.owner).get("/usage/csv/", {"month": last_month.key})

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("instance,") and "trainer" in lines[1]
    assert f"acme-usage-{last_month.key}.csv" in response["Content-Disposition"]
    assert_error(api_as(team.owner).get("/usage/csv/", {"month": "2999-01"}), 400)


def test_set_read_and_remove_the_budget(team, api_as):
    api = api_as(team.billing)

    empty = api.get("/budget/").json()
    assert empty["amount"] is None and empty["alerts"] == [] and empty["spend"] == "0.00"

    saved = api.put("/budget/", {"amount": "5000.00", "hard_limit": True})
    assert saved.status_code == 200, saved.content
    assert saved.json()["amount"] == "5000.00" and saved.json()["hard_limit"] is True
    assert team.organization.budget.amount == Decimal("5000.00")

    assert api.delete("/budget/").status_code == 204
    assert api.get("/budget/").json()["amount"] is None


@pytest.mark.parametrize(
    "data",
    [
        {"amount": 5000},
        {"amount": "-1"},
        {"amount": "0"},
        {"amount": "12.345"},
        {"amount": "lots"},
        {"hard_limit": True},
        {"amount": "10", "hard_limit": "yes"},
        {"amount": "10", "currency": "EUR"},
    ],
)
def test_a_bad_budget_is_400(team, api_as, data):
    error = assert_error(api_as(team.owner).put("/budget/", data), 400)
    assert error.get("details"), error


def test_a_budget_reached_is_shown_with_its_alerts(team, api_as, used, monkeypatch):
    from portal.billing import selectors

    monkeypatch.setattr(
        "portal.billing.services.budgets.month_spend", lambda **kwargs: Decimal("95.00")
    )
    monkeypatch.setattr(selectors, "month_spend", lambda **kwargs: Decimal("95.00"))
    body = api_as(team.owner).put("/budget/", {"amount": "100.00", "hard_limit": True}).json()

    assert [a["threshold_percent"] for a in body["alerts"]] == [50, 80]
    assert body["spend"] == "95.00" and body["launches_blocked"] is None


def test_viewers_and_members_cannot_touch_the_budget(team, api_as):
    for role in ("viewer", "member"):
        assert_error(api_as(team.by_role(role)).put("/budget/", {"amount": "1.00"}), 403)
