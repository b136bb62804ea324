"""The billing overview reads its budget, credit balances and whether a reservation overlaps
the month in one plain SQL statement: the same as the ORM's reads, and a change shows on the
next view."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.billing import selectors, services
from portal.billing.models import Budget, CreditApplication, CreditGrant, CreditKind
from portal.billing.periods import Month
from portal.reservations.models import Reservation
from tests.billing.conftest import at, sync, timeline

MARCH = Month(2026, 3)


def _fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def _assert_as_the_orm(organization, month) -> selectors._OverviewReads:
    reads = selectors._overview_reads(organization=organization, month=month)
    budget = Budget.objects.filter(organization=organization).first()
    assert (reads.budget is None) is (budget is None)
    if budget is not None:
        assert _fields(reads.budget) == _fields(budget)
    assert reads.balances == selectors.credit_balances(organization=organization)
    overlapping = Reservation.objects.overlapping(month.start, month.end).filter(
        organization=organization
    )
    assert reads.reserved is overlapping.exists()
    return reads


def _reservation(team, catalog, start, end, **fields) -> Reservation:
    return Reservation.objects.create(
        organization=team.organization,
        region=catalog.us_east,
        gpu_model=catalog.h100_1x.gpu_model,
        gpus=8,
        start=at(start),
        end=at(end),
        price_per_gpu_hour=Decimal("1.50"),
        **fields,
    )


def test_the_reads_are_the_orms(team, catalog, make_instance, clock):
    reads = _assert_as_the_orm(team.organization, MARCH)
    assert reads.budget is None and not reads.reserved
    assert reads.balances == {CreditKind.CREDIT: Decimal("0.00"), CreditKind.PREPAID: Decimal(0)}

    # Credit used by an issued invoice, prepaid untouched; a budget; reservations that do not
    # overlap March (cancelled, April's, another organization's) and then one that does.
    for kind, amount in [(CreditKind.CREDIT, "10.00"), (CreditKind.PREPAID, "500.00")]:
        CreditGrant.objects.create(
            organization=team.organization,
            kind=kind,
            amount=Decimal(amount),
            reason="test",
            created_at=at("2026-02-01 00:00:00"),
        )
    trainer = make_instance(team.organization, name="trainer")
    timeline(trainer, ("2026-02-02 08:00:00", "running"), ("2026-02-03 08:00:00", "stopped"))
    sync(trainer)
    services.invoice_issue(organization=team.organization, month=Month(2026, 2))
    assert CreditApplication.objects.filter(grant__organization=team.organization).exists()
    Budget.objects.create(
        organization=team.organization,
        amount=Decimal("1234.56"),
        hard_limit=True,
        updated_at=at("2026-03-01 00:00:00"),
    )
    _reservation(
        team,
        catalog,
        "2026-03-01 00:00:00",
        "2026-03-20 00:00:00",
        cancelled_at=at("2026-02-20 00:00:00"),
    )
    _reservation(team, catalog, "2026-04-01 00:00:00", "2026-05-01 00:00:00")
    reads = _assert_as_the_orm(team.organization, MARCH)
    assert reads.budget is not None and reads.budget.amount == Decimal("1234.56")
    assert reads.balances[CreditKind.CREDIT] < Decimal("10.00")  # some of it applied
    assert reads.balances[CreditKind.PREPAID] <= Decimal("500.00")
    assert not reads.reserved
    _reservation(team, catalog, "2026-02-20 00:00:00", "2026-03-01 00:00:01")
    assert _assert_as_the_orm(team.organization, MARCH).reserved


def test_a_reservation_and_a_budget_show_on_the_next_view(team, catalog, client_for, clock):
    client = client_for(team.owner.user)
    url = reverse("billing:overview", args=["acme"])
    before = selectors.billing_overview(organization=team.organization, month=MARCH)
    assert before.reserved == 0 and before.budget is None
    client.get(url)
    _reservation(team, catalog, "2026-03-10 00:00:00", "2026-03-11 00:00:00")
    Budget.objects.create(
        organization=team.organization, amount=Decimal("100.00"), updated_at=at("2026-03-01")
    )
    after = selectors.billing_overview(organization=team.organization, month=MARCH)
    assert after.reserved == Decimal("288.00")  # 8 GPUs × 24 h × $1.50
    assert after.forecast == before.forecast + Decimal("288.00")
    assert after.budget is not None and after.budget.amount == Decimal("100.00")
    page = client.get(url).text
    assert "$288.00" in page and "$100.00" in page


def test_the_overview_reads_no_reservations_when_none_overlaps(team, client_for, clock):
    client = client_for(team.owner.user)
    url = reverse("billing:overview", args=["acme"])
    client.get(url)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    tables = [
        q["sql"] for q in captured if q["sql"].startswith('SELECT "reservations_reservation"')
    ]
    assert tables == []


pytestmark = pytest.mark.django_db


def test_the_unpaid_invoices_are_the_orms_with_what_credit_notes_took_off(
    team, make_instance, clock
):
    from django.db.models import Sum
    from django.db.models.functions import Coalesce

    from portal.billing.models import CreditNote, Invoice

    trainer = make_instance(team.organization, name="trainer")
    timeline(trainer, ("2026-01-02 08:00:00", "running"))
    sync(trainer)
    clock.set("2026-03-15 12:00:00")
    issued = [
        services.invoice_issue(organization=team.organization, month=Month(2026, month))
        for month in (1, 2)
    ]
    CreditNote.objects.create(
        invoice=issued[0],
        number="CN-1",
        amount=Decimal("5.00"),
        reason="test",
        issued_at=at("2026-03-01 00:00:00"),
    )
    expected = list(
        Invoice.objects.filter(organization=team.organization, paid_at__isnull=True)
        .annotate(credited=Coalesce(Sum("credit_notes__amount"), Decimal(0)))
        .order_by("due_at")
    )
    found = selectors.unpaid_invoices(organization=team.organization)
    assert [_fields(i) for i in found] == [_fields(i) for i in expected]
    assert [i.credited for i in found] == [Decimal("5.00"), Decimal(0)]
    assert [selectors.invoice_balance_due(i) for i in found] == [
        selectors.invoice_balance_due(Invoice.objects.get(pk=i.pk)) for i in expected
    ]
    Invoice.objects.filter(pk=issued[0].pk).update(paid_at=at("2026-03-10 00:00:00"))
    assert [i.pk for i in selectors.unpaid_invoices(organization=team.organization)] == [
        issued[1].pk
    ]
