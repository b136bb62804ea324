"""Invoices: lines that add up to the cent, credits and tax, immutability, bad input, e-mail."""

from decimal import Decimal

import pytest
from django.core import mail

from portal.billing import services
from portal.billing.models import (
    CreditGrant,
    CreditNote,
    Invoice,
    InvoiceLine,
    NumberSequence,
    Payment,
)
from portal.billing.periods import Month
from portal.billing.selectors import (
    credit_balances,
    invoice_balance_due,
    invoice_status,
    launch_block_reason,
    organization_has_overdue_invoice,
)
from portal.lib.errors import ApplicationError
from portal.notifications.delivery import notification_deliver
from portal.notifications.models import Notification
from portal.quotas.standing import organization_has_unpaid_invoice
from tests.billing.conftest import at, price_change, sync, timeline

MARCH = Month(2026, 3)


@pytest.fixture
def march_usage(team, catalog, make_instance, clock):
    """A month of mixed usage whose lines each round: on-demand, spot, stopped, a price change."""
    org = team.organization
    price_change(catalog.h100_8x, "2026-03-20 00:00:00", "18.40", "9.60", "0.16")
    big = make_instance(org, instance_type=catalog.h100_8x, name="big")
    timeline(
        big,
        ("2026-03-18 06:00:07", "running"),  # 2.49 h at 19.92, 3 days later 18.40
        ("2026-03-21 13:17:45", "stopping"),
        ("2026-03-21 13:18:02", "stopped"),
        ("2026-03-25 00:00:00", "terminating"),
        ("2026-03-25 00:00:09", "terminated"),
    )
    spot = make_instance(org, preemptible=True, region=catalog.eu_west, name="spot")
    timeline(spot, ("2026-03-05 10:00:00", "running"), ("2026-03-05 17:33:21", "interrupted"))
    small = make_instance(org, name="small")
    timeline(small, ("2026-03-30 22:10:00", "running"))  # runs into April
    for instance in (big, spot, small):
        sync(instance)
    clock.set("2026-04-01 02:00:00")


def issue(team, month=MARCH, **kwargs) -> Invoice:
    return services.invoice_issue(organization=team.organization, month=month, **kwargs)


def test_the_lines_add_up_to_the_total_to_the_cent(team, march_usage, settings):
    settings.TAX_RATE = Decimal("0")
    invoice = issue(team)
    lines = list(invoice.lines.all())
    assert [(line.description, line.seconds, line.amount) for line in lines] == [
        ("1x H100 80GB · eu-west-1 · Preemptible", 27201, Decimal("9.75")),
        ("1x H100 80GB · us-east-1 · On-demand", 93000, Decimal("64.33")),  # 64.325
        ("8x H100 80GB · us-east-1 · On-demand", 151193, Decimal("836.60")),  # at 19.92
        ("8x H100 80GB · us-east-1 · On-demand", 134282, Decimal("686.33")),  # from Mar 20: 18.40
        ("8x H100 80GB · us-east-1 · Stopped (reserved disk)", 297718, Decimal("13.23")),
    ]
    # Each line is its seconds × unit price / 3600, rounded once, half up.
    for line in lines:
        exact = Decimal(line.seconds) * line.unit_price / 3600
        assert line.amount == exact.quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
    assert invoice.subtotal == sum(line.amount for line in lines) == Decimal("1610.24")
    assert invoice.total == invoice.amount_due == invoice.subtotal
    assert invoice.number == "BF-2026-000001"
    assert (invoice.period_start, invoice.period_end) == (MARCH.start, at("2026-04-01 00:00:00"))
    assert invoice.due_at == at("2026-04-15 02:00:00")
    assert lines[2].gpu_seconds == 8 * lines[2].seconds


def test_credits_reduce_the_taxable_amount_and_prepaid_balance_pays_the_total(
    team, march_usage, settings, clock
):
    settings.TAX_RATE = Decimal("0.2")
    old = services.credit_grant(
        organization=team.organization, amount="100", reason="Launch promotion", by=None
    )
    services.credit_grant(
        organization=team.organization, amount="1000.00", reason="Outage in March", by=None
    )
    services.credit_grant(
        organization=team.organization, kind="prepaid", amount="500", reason="Wire", by=None
    )
    invoice = issue(team)
    assert invoice.subtotal == Decimal("1610.24")
    assert invoice.credits_applied == Decimal("1100.00")
    assert invoice.tax == Decimal("102.05")  # 20 % of 510.24 = 102.048
    assert invoice.total == Decimal("612.29")  # 510.24 + 102.05
    assert invoice.prepaid_applied == Decimal("500.00")
    assert invoice.amount_due == Decimal("112.29")
    assert invoice.subtotal - invoice.credits_applied + invoice.tax == invoice.total
    assert invoice.total - invoice.prepaid_applied == invoice.amount_due
    assert {a.grant_id: a.amount for a in invoice.applications.all()}[old.pk] == Decimal("100")
    assert credit_balances(organization=team.organization) == {
        "credit": Decimal("0.00"),
        "prepaid": Decimal("0.00"),
    }


def test_credits_larger_than_the_invoice_carry_over_and_nothing_is_due(
    team, march_usage, settings, clock
):
    settings.TAX_RATE = Decimal("0.2")
    services.credit_grant(organization=team.organization, amount="2000", reason="Pilot", by=None)
    invoice = issue(team)
    assert invoice.credits_applied == invoice.subtotal
    assert (invoice.tax, invoice.total, invoice.amount_due) == (0, 0, 0)
    assert invoice.paid_at == clock()
    assert invoice_status(invoice) == ("Paid", "ok")
    assert credit_balances(organization=team.organization)["credit"] == Decimal("389.76")


def test_an_issued_invoice_cannot_be_changed(team, march_usage):
    invoice = issue(team)
    invoice.total = Decimal("1")
    with pytest.raises(ValueError, match="cannot be changed"):
        invoice.save()
    with pytest.raises(ValueError, match="cannot be changed"):
        invoice.save(update_fields=["total"])
    assert Invoice.objects.get().total == Decimal("1610.24")


def test_a_month_not_yet_ended_is_refused_and_nothing_changes(team, march_usage, clock):
    clock.set("2026-03-31 23:59:59")
    with pytest.raises(ApplicationError, match="March 2026 has not ended yet"):
        issue(team)
    assert not Invoice.objects.exists()
    assert not NumberSequence.objects.exists()


def test_a_second_issue_of_the_same_month_is_refused_without_using_a_number(
    team, march_usage, catalog, make_instance
):
    first = issue(team)
    with pytest.raises(ApplicationError, match=f"already has invoice {first.number}"):
        issue(team)
    assert Invoice.objects.count() == 1
    assert NumberSequence.objects.get().last_value == 1


def test_a_month_without_usage_is_refused_and_does_not_use_a_number(team, catalog, clock):
    clock.set("2026-04-01 02:00:00")
    with pytest.raises(ApplicationError, match="used nothing in March 2026"):
        issue(team)
    assert not Invoice.objects.exists()
    assert NumberSequence.objects.filter(last_value__gt=0).count() == 0


def test_numbers_run_on_without_gaps_across_organizations_and_per_year(
    team, outsider, make_instance, clock
):
    for org in (team.organization, outsider.organization):
        instance = make_instance(org)
        timeline(instance, ("2026-11-03 10:00:00", "running"), ("2026-12-03 10:00:00", "failed"))
    clock.set("2026-12-01 02:00:00")
    november = services.invoices_issue_for_month(month=Month(2026, 11))[0]
    clock.set("2027-01-01 02:00:00")
    december = services.invoices_issue_for_month(month=Month(2026, 12))[0]
    assert [i.number for i in november] == ["BF-2026-000001", "BF-2026-000002"]
    assert [i.number for i in december] == ["BF-2027-000001", "BF-2027-000002"]


def test_the_invoice_is_emailed_with_its_pdf_to_owners_and_billing_members(
    team, march_usage, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invoice = issue(team)
    assert sorted(m.to[0] for m in mail.outbox) == sorted(
        [team.owner.user.email, team.billing.user.email]
    )
    message = mail.outbox[0]
    assert message.subject == (
        f"[Backfill] Invoice {invoice.number} for March 2026: $1,610.24 due by April 15"
    )
    (filename, content, mimetype) = message.attachments[0]
    assert (filename, mimetype) == (f"{invoice.number}.pdf", "application/pdf")
    assert content.startswith(b"%PDF")
    assert f"/o/acme/billing/invoices/{invoice.pk}/" in message.body
    html = message.alternatives[0][0]
    assert "$1,610.24" in html
    # Sent once: a second attempt (a retried task) sends nothing.
    (queued,) = Notification.objects.filter(kind="invoice_issued")
    assert notification_deliver(queued.pk) == "skipped"
    assert len(mail.outbox) == 2


def test_staff_mark_an_invoice_paid_once(team, march_usage, clock, admin_user):
    invoice = issue(team)
    clock.set("2026-04-10 09:00:00")
    services.invoice_mark_paid(invoice=invoice, by=admin_user, reference="TX-81")
    invoice.refresh_from_db()
    assert (invoice.paid_at, invoice.paid_by, invoice.payment_reference) == (
        clock(),
        admin_user,
        "TX-81",
    )
    payment = Payment.objects.get()
    assert (payment.amount, payment.provider) == (Decimal("1610.24"), "invoice")
    with pytest.raises(ApplicationError, match="already marked paid"):
        services.invoice_mark_paid(invoice=invoice, by=admin_user)
    assert Payment.objects.count() == 1


def test_a_credit_note_lowers_what_is_due_and_refunds_what_was_paid_as_balance(
    team, march_usage, clock, admin_user
):
    invoice = issue(team)
    note = services.credit_note_issue(
        invoice=invoice, amount="10.24", reason="Node 3 was slow", by=admin_user
    )
    assert note.number == "BF-CN-2026-000001"
    invoice = Invoice.objects.get()
    assert invoice.total == Decimal("1610.24")  # the invoice itself never changes
    assert invoice_balance_due(invoice) == Decimal("1600.00")
    assert not CreditGrant.objects.exists()

    services.invoice_mark_paid(invoice=invoice, by=admin_user)
    services.credit_note_issue(invoice=invoice, amount="100", reason="Goodwill", by=admin_user)
    grant = CreditGrant.objects.get()
    assert (grant.kind, grant.amount) == ("prepaid", Decimal("100"))
    assert credit_balances(organization=team.organization)["prepaid"] == Decimal("100")


@pytest.mark.parametrize(
    "amount, reason, message",
    [
        ("10", "", "Give a reason"),
        ("10", "   ", "Give a reason"),
        ("-5", "Refund", "cannot be negative"),
        ("ten", "Refund", "must be a number"),
        ("1610.25", "Refund", "has 1610.24 USD left to credit"),
    ],
)
def test_a_bad_credit_note_is_refused_and_changes_nothing(
    team, march_usage, admin_user, amount, reason, message
):
    invoice = issue(team)
    with pytest.raises(ApplicationError, match=message):
        services.credit_note_issue(invoice=invoice, amount=amount, reason=reason, by=admin_user)
    assert not CreditNote.objects.exists()
    assert NumberSequence.objects.count() == 1


@pytest.mark.parametrize(
    "amount, reason, message",
    [
        ("50", "", "Give a reason"),
        ("0", "Promo", "must be more than zero"),
        ("-50", "Promo", "cannot be negative"),
        ("1.005", "Promo", "at most two decimals"),
    ],
)
def test_a_bad_credit_grant_is_refused_and_changes_nothing(team, amount, reason, message):
    with pytest.raises(ApplicationError, match=message):
        services.credit_grant(organization=team.organization, amount=amount, reason=reason, by=None)
    assert not CreditGrant.objects.exists()


def test_an_overdue_invoice_pauses_launches_on_the_operators_day_until_paid(
    team, march_usage, clock, admin_user
):
    invoice = issue(team)
    clock.set("2026-04-15 02:00:00")  # due now: not yet overdue
    assert launch_block_reason(organization=team.organization) is None
    assert organization_has_unpaid_invoice(team.organization) is False
    clock.set("2026-04-18 09:00:00")  # overdue; launches pause 7 days after the due date
    assert organization_has_overdue_invoice(team.organization)
    assert launch_block_reason(organization=team.organization) is None
    clock.set("2026-04-23 09:00:00")
    reason = launch_block_reason(organization=team.organization)
    assert reason == (
        f"Launches are paused: invoice {invoice.number} ($1,610.24) was due on April 15, 2026 "
        "and is 8 days overdue. Invoices are due 14 days after issue; launches resume once it "
        "is paid."
    )
    assert organization_has_unpaid_invoice(team.organization) is True
    assert invoice_status(Invoice.objects.get()) == ("Overdue", "danger")
    services.invoice_mark_paid(invoice=invoice, by=admin_user)
    assert launch_block_reason(organization=team.organization) is None
    assert organization_has_unpaid_invoice(team.organization) is False


def test_a_fully_credited_invoice_does_not_block(team, march_usage, clock, admin_user):
    invoice = issue(team)
    services.credit_note_issue(invoice=invoice, amount="1610.24", reason="Waived", by=admin_user)
    clock.set("2026-05-01 00:00:00")
    assert launch_block_reason(organization=team.organization) is None
    assert invoice_status(Invoice.objects.get()) == ("Credited", "ok")


def test_the_overdue_days_are_a_setting(team, march_usage, clock, settings):
    settings.BILLING_OVERDUE_DAYS = 30
    invoice = issue(team)
    assert invoice.due_at == at("2026-05-01 02:00:00")
    clock.set("2026-04-20 00:00:00")
    assert launch_block_reason(organization=team.organization) is None


def test_invoice_lines_are_kept_when_prices_change_later(team, march_usage, catalog):
    invoice = issue(team)
    before = list(InvoiceLine.objects.values_list("unit_price", "amount"))
    price_change(catalog.h100_1x, "2026-03-01 00:00:00", "9.99", "9.99", "9.99")
    assert list(InvoiceLine.objects.values_list("unit_price", "amount")) == before
    assert Invoice.objects.get().total == invoice.total


def test_issuing_fires_the_invoice_webhook(team, march_usage):
    from portal.webhooks.models import WebhookDelivery, WebhookEndpoint

    WebhookEndpoint.objects.create(
        organization=team.organization,
        url="https://hooks.example.com/backfill",
        event_types=["invoice.issued"],
        secret_encrypted="x",
        secret_hint="x",
    )
    invoice = issue(team)
    delivery = WebhookDelivery.objects.get()
    assert delivery.event_type == "invoice.issued"
    assert invoice.number in str(delivery.body)


def test_a_grant_and_a_credit_note_show_on_the_next_view_of_the_billing_page(
    team, march_usage, client_for, clock
):
    """The page reads credit balances and the unpaid invoices' credit notes with plain sums:
    a grant or a credit note written between two views shows on the second."""
    from django.urls import reverse

    from portal.billing.selectors import unpaid_invoices

    client = client_for(team.owner.user)
    page = reverse("billing:overview", args=[team.organization.slug])
    assert "credit left $0.00" in client.get(page).text
    services.credit_grant(organization=team.organization, amount="25", reason="Pilot", by=None)
    assert "credit left $25.00" in client.get(page).text
    assert credit_balances(organization=team.organization)["prepaid"] == Decimal("0")

    invoice = issue(team)  # the grant is applied to it
    assert "credit left $0.00" in client.get(page).text
    due = invoice_balance_due(invoice)
    assert f"${due:,.2f}" in client.get(page).text
    assert [(i.pk, i.credited) for i in unpaid_invoices(organization=team.organization)] == [
        (invoice.pk, Decimal("0"))
    ]
    CreditNote.objects.create(
        invoice=invoice,
        number="CN-TEST-1",
        amount=Decimal("10.00"),
        reason="Goodwill",
        issued_at=clock(),
    )
    assert unpaid_invoices(organization=team.organization)[0].credited == Decimal("10.00")
    assert f"${due - Decimal('10.00'):,.2f}" in client.get(page).text  # what is left to pay
