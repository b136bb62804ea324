"""Staff in admin: see invoices, issue a month, mark paid, credit notes, credits with a reason."""

from decimal import Decimal

import pytest
from django.urls import reverse

from portal.billing import services
from portal.billing.models import CreditGrant, CreditNote, Invoice
from portal.billing.periods import Month
from tests.billing.conftest import sync, timeline
from tests.factories import UserFactory

MARCH = Month(2026, 3)


@pytest.fixture
def staff(db, client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def used_march(team, make_instance, clock):
    instance = make_instance(team.organization)
    timeline(instance, ("2026-03-10 10:00:00", "running"), ("2026-03-10 20:00:00", "failed"))
    sync(instance)
    clock.set("2026-04-01 09:00:00")
    return instance


def issue_page(staff, **data):
    return staff.post(reverse("admin:billing_invoice_issue"), data)


def test_issuing_a_month_from_admin(staff, team, used_march):
    assert staff.get(reverse("admin:billing_invoice_issue")).status_code == 200
    response = issue_page(staff, month="2026-03")
    assert response.status_code == 302
    invoice = Invoice.objects.get()
    assert (invoice.organization, invoice.subtotal) == (team.organization, Decimal("24.90"))
    assert invoice.issued_by.is_staff
    listing = staff.get(reverse("admin:billing_invoice_changelist")).content.decode()
    assert invoice.number in listing and "Issue invoices for a month" in listing


@pytest.mark.parametrize(
    "month, message",
    [
        ("2026-04", "April 2026 has not ended yet"),
        ("2026-4", "is not a month; write it as YYYY-MM"),
        ("soon", "is not a month; write it as YYYY-MM"),
    ],
)
def test_issuing_a_bad_month_is_refused(staff, used_march, month, message):
    response = issue_page(staff, month=month)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Invoice.objects.exists()


def test_issuing_an_organization_twice_is_refused(staff, team, used_march):
    issue_page(staff, month="2026-03", organization=team.organization.pk)
    response = issue_page(staff, month="2026-03", organization=team.organization.pk)
    assert response.status_code == 400
    assert "already has invoice BF-2026-000001 for March 2026" in response.content.decode()
    assert Invoice.objects.count() == 1


def test_the_invoice_page_is_read_only_with_payment_and_credit_note_links(staff, team, used_march):
    invoice = services.invoice_issue(organization=team.organization, month=MARCH)
    page = staff.get(reverse("admin:billing_invoice_change", args=[invoice.pk])).content.decode()
    assert reverse("admin:billing_invoice_mark_paid", args=[invoice.pk]) in page
    assert reverse("admin:billing_invoice_credit_note", args=[invoice.pk]) in page
    assert 'name="total"' not in page and 'name="_save"' not in page  # view only
    pdf = staff.get(reverse("admin:billing_invoice_pdf", args=[invoice.pk]))
    assert pdf.content.startswith(b"%PDF")
    assert staff.get(reverse("admin:billing_invoice_add")).status_code == 403
    delete = staff.post(reverse("admin:billing_invoice_delete", args=[invoice.pk]), {"post": "yes"})
    assert delete.status_code == 403
    assert Invoice.objects.count() == 1


def test_marking_paid_and_issuing_a_credit_note_from_admin(staff, team, used_march):
    invoice = services.invoice_issue(organization=team.organization, month=MARCH)
    url = reverse("admin:billing_invoice_credit_note", args=[invoice.pk])
    response = staff.post(url, {"amount": "4.90", "reason": ""})
    assert response.status_code == 400
    assert "Give a reason" in response.content.decode()
    assert not CreditNote.objects.exists()
    staff.post(url, {"amount": "4.90", "reason": "Slow disk"})
    assert CreditNote.objects.get().amount == Decimal("4.90")

    staff.post(reverse("admin:billing_invoice_mark_paid", args=[invoice.pk]), {"reference": "TX1"})
    invoice.refresh_from_db()
    assert invoice.payment_reference == "TX1" and invoice.paid_at is not None
    again = staff.post(reverse("admin:billing_invoice_mark_paid", args=[invoice.pk]), {})
    assert "already marked paid" in again.content.decode()


def test_the_bulk_mark_paid_action(staff, team, used_march):
    invoice = services.invoice_issue(organization=team.organization, month=MARCH)
    staff.post(
        reverse("admin:billing_invoice_changelist"),
        {"action": "mark_paid", "_selected_action": [invoice.pk]},
    )
    invoice.refresh_from_db()
    assert invoice.paid_at is not None


def test_granting_credit_requires_a_reason(staff, team):
    url = reverse("admin:billing_creditgrant_grant")
    assert staff.get(reverse("admin:billing_creditgrant_add")).status_code == 302
    data = {"organization": team.organization.pk, "kind": "credit", "amount": "250"}
    response = staff.post(url, {**data, "reason": " "})
    assert response.status_code == 400
    assert "Give a reason" in response.content.decode()
    assert not CreditGrant.objects.exists()
    response = staff.post(url, {**data, "amount": "-3", "reason": "Promo"})
    assert "cannot be negative" in response.content.decode()
    assert not CreditGrant.objects.exists()
    response = staff.post(url, {**data, "reason": "Startup programme"})
    assert response.status_code == 302
    grant = CreditGrant.objects.get()
    assert (grant.amount, grant.reason, grant.granted_by.is_staff) == (
        Decimal("250"),
        "Startup programme",
        True,
    )


def test_customers_cannot_reach_billing_admin(client, team):
    client.force_login(team.owner.user)
    response = client.get(reverse("admin:billing_invoice_issue"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_money_actions_are_in_the_audit_log(staff, team, used_march, clock):
    from portal.audit.models import AuditEntry

    issue_page(staff, month="2026-03")
    invoice = Invoice.objects.get()
    staff.post(
        reverse("admin:billing_invoice_credit_note", args=[invoice.pk]),
        {"amount": "1", "reason": "Sorry"},
    )
    staff.post(reverse("admin:billing_invoice_mark_paid", args=[invoice.pk]), {"reference": "TX"})
    staff.post(
        reverse("admin:billing_creditgrant_grant"),
        {"organization": team.organization.pk, "kind": "credit", "amount": "5", "reason": "Promo"},
    )
    services.budget_set(
        organization=team.organization, amount="50", hard_limit=True, by=team.owner.user
    )
    entries = AuditEntry.objects.filter(organization=team.organization).order_by("id")
    assert [
        (e.action, e.actor_kind)
        for e in entries
        if e.action.split(".")[0] in {"invoice", "credit", "budget"}
    ] == [
        ("invoice.issued", "staff"),
        ("invoice.credit_note_issued", "staff"),
        ("invoice.paid", "staff"),
        ("credit.granted", "staff"),
        ("budget.changed", "user"),
    ]
