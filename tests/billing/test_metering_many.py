"""Metering many instances at once (`usage_sync_instances`, a cluster's nodes moved together)
bills exactly what metering each alone bills: the same intervals, so the same invoice."""

from decimal import Decimal

import pytest
from django.db import transaction

from portal.billing import services
from portal.billing.models import InstanceMeter, UsageInterval
from portal.billing.periods import Month
from tests.billing.conftest import price_change, sync, timeline

MARCH = Month(2026, 3)
APRIL = Month(2026, 4)


@pytest.fixture
def fleet(team, outsider, make_instance, catalog, clock):
    """Instances of two organizations whose timelines cross a price change, midnights, a stop
    and a start, an interruption, and the end of March."""
    org = team.organization
    other = make_instance(outsider.organization, name="other")
    price_change(catalog.h100_8x, "2026-03-20 00:00:00", "18.40", "9.50", "0.16")
    big = make_instance(org, instance_type=catalog.h100_8x, name="big")
    timeline(
        big,
        ("2026-03-18 06:00:07", "running"),
        ("2026-03-21 13:17:45", "stopping"),
        ("2026-03-21 13:18:02", "stopped"),
        ("2026-03-23 09:00:00", "starting"),
        ("2026-03-23 09:00:31", "running"),
    )
    spot = make_instance(org, preemptible=True, region=catalog.eu_west, name="spot")
    timeline(spot, ("2026-03-05 10:00:00", "running"), ("2026-03-05 17:33:21", "interrupted"))
    late = make_instance(org, name="late")
    timeline(late, ("2026-03-30 22:10:00", "running"))  # runs into April
    never = make_instance(org, name="never")
    timeline(never, ("2026-03-30 22:10:00", "provisioning"), ("2026-03-30 22:11:00", "failed"))
    timeline(other, ("2026-03-31 23:00:00", "running"))
    return [big, spot, late, never, other]


def metered(instances, meter, monkeypatch, month):
    """The intervals and the month's invoice after metering with `meter`, then undone."""
    # The invoice is issued from the usage as metered here, not metered again.
    monkeypatch.setattr(
        "portal.billing.services.invoices.usage_sync_organization", lambda **kwargs: None
    )
    with transaction.atomic():
        meter(instances)
        rows = sorted(
            UsageInterval.objects.values_list(
                *("instance_id", "start", "end", "kind", "unit_price", "price_id", "currency"),
                *("gpus", "cluster", "sealed_price_seconds"),
            )
        )
        meters = sorted(InstanceMeter.objects.values_list("instance_id", "last_event_id"))
        invoices = {}
        for organization in organizations(instances):
            invoice = services.invoice_issue(organization=organization, month=month)
            invoices[organization.pk] = (
                invoice.subtotal,
                invoice.total,
                [(line.description, line.seconds, line.amount) for line in invoice.lines.all()],
            )
        transaction.set_rollback(True)
    return rows, meters, invoices


def organizations(instances):
    return sorted({i.organization for i in instances}, key=lambda o: o.pk)


def each_alone(instances):
    for instance in instances:
        sync(instance)


def all_at_once(instances):
    services.usage_sync_instances(instance_ids=[i.pk for i in instances])


def test_metering_many_at_once_bills_what_metering_each_alone_bills(fleet, clock, monkeypatch):
    clock.set("2026-04-01 02:00:00")

    alone = metered(fleet, each_alone, monkeypatch, MARCH)
    together = metered(fleet, all_at_once, monkeypatch, MARCH)

    assert together == alone
    rows, meters, invoices = together
    assert len(meters) == len(fleet)
    assert any(subtotal > Decimal("0") for subtotal, _, _ in invoices.values())
    assert any(row[2] is None for row in rows)  # "late" still runs: its piece is open


def test_after_an_invoice_both_leave_the_invoiced_month_as_billed(fleet, clock, monkeypatch):
    clock.set("2026-03-31 23:30:00")
    all_at_once(fleet)
    clock.set("2026-04-01 02:00:00")
    for organization in organizations(fleet):
        services.invoice_issue(organization=organization, month=MARCH)
    # Learnt late: "late" had stopped in March; "big" stops in April.
    big, _, late, _, _ = fleet
    timeline(late, ("2026-03-31 23:15:00", "stopping"), ("2026-03-31 23:15:00", "stopped"))
    timeline(big, ("2026-04-02 08:00:00", "stopping"), ("2026-04-02 08:00:05", "stopped"))
    clock.set("2026-05-01 01:00:00")

    alone = metered(fleet, each_alone, monkeypatch, APRIL)
    together = metered(fleet, all_at_once, monkeypatch, APRIL)

    assert together == alone


def test_metering_many_twice_changes_nothing(fleet, clock):
    clock.set("2026-04-01 02:00:00")
    all_at_once(fleet)
    first = sorted(UsageInterval.objects.values_list("pk", "start", "end", "kind"))

    all_at_once(fleet)

    assert sorted(UsageInterval.objects.values_list("pk", "start", "end", "kind")) == first
