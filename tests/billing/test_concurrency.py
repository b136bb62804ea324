"""Gapless invoice numbers and single invoices under concurrent issuing, on real PostgreSQL.

Threads each hold their own database connection; a barrier starts them together.
"""

import threading
from unittest.mock import patch

import pytest
from django.db import connection

from portal.billing import services
from portal.billing.models import Invoice, NumberSequence, UsageInterval
from portal.billing.periods import Month
from portal.instances.models import Instance
from portal.lib.errors import ApplicationError
from tests.billing.conftest import at, timeline
from tests.factories import OrganizationFactory

MARCH = Month(2026, 3)
ORGANIZATIONS = 12


def run_together(functions) -> list:
    barrier = threading.Barrier(len(functions))
    results: list = [None] * len(functions)

    def worker(index, function):
        try:
            barrier.wait()
            results[index] = function()
        except Exception as error:  # noqa: BLE001 - reported to the test
            results[index] = error
        finally:
            connection.close()

    threads = [
        threading.Thread(target=worker, args=(index, function))
        for index, function in enumerate(functions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_issuing_numbers_every_invoice_once_without_gaps(catalog, make_instance):
    organizations = [OrganizationFactory(slug=f"org-{n}") for n in range(ORGANIZATIONS)]
    for organization in organizations:
        instance = make_instance(organization)
        timeline(instance, ("2026-03-10 10:00:00", "running"), ("2026-03-10 12:00:00", "failed"))
    no_usage = OrganizationFactory(slug="idle")  # refused: rolls back after taking its number
    with patch("portal.billing.clock.now", lambda: at("2026-04-01 02:00:00")):
        # Two workers per organization (a beat run and a staff click at the same time), and
        # an organization with nothing to bill whose refusal must not leave a hole.
        calls = [
            (lambda org=org: services.invoice_issue(organization=org, month=MARCH))
            for org in organizations * 2 + [no_usage] * 3
        ]
        results = run_together(calls)

    invoices = [r for r in results if isinstance(r, Invoice)]
    refusals = [r for r in results if isinstance(r, ApplicationError)]
    assert not [r for r in results if not isinstance(r, Invoice | ApplicationError)], results
    assert len(invoices) == ORGANIZATIONS
    assert len(refusals) == ORGANIZATIONS + 3
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == [f"BF-2026-{n:06d}" for n in range(1, ORGANIZATIONS + 1)]
    assert NumberSequence.objects.get(series="BF-2026").last_value == ORGANIZATIONS
    assert Invoice.objects.values("organization").distinct().count() == ORGANIZATIONS


@pytest.mark.django_db(transaction=True)
def test_concurrent_syncs_of_one_instance_write_its_usage_once(team, make_instance):
    instance = make_instance(team.organization)
    timeline(
        instance,
        ("2026-03-10 10:00:00", "running"),
        ("2026-03-12 10:00:00", "stopping"),
        ("2026-03-12 10:00:05", "stopped"),
    )
    with patch("portal.billing.clock.now", lambda: at("2026-03-14 00:00:00")):
        results = run_together([lambda: services.usage_sync_instance(instance_id=instance.pk)] * 8)
    assert results == [None] * 8
    rows = list(UsageInterval.objects.filter(instance=instance).values_list("start", "end", "kind"))
    assert rows == [
        (at("2026-03-10 10:00:00"), at("2026-03-11 00:00:00"), "on_demand"),
        (at("2026-03-11 00:00:00"), at("2026-03-12 00:00:00"), "on_demand"),
        (at("2026-03-12 00:00:00"), at("2026-03-12 10:00:05"), "on_demand"),
        (at("2026-03-12 10:00:05"), at("2026-03-13 00:00:00"), "stopped"),
        (at("2026-03-13 00:00:00"), at("2026-03-14 00:00:00"), "stopped"),
        (at("2026-03-14 00:00:00"), None, "stopped"),
    ]
    assert Instance.objects.get().pk == instance.pk
