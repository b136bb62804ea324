"""Preemptible usage at the spot price in force each second: an instance across 50 price
changes is billed exactly Σ seconds × price, rounded once, on the invoice and in the CSVs."""

import csv
import io
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.urls import reverse

from portal.billing import documents, rating, services
from portal.billing.models import UsageKind
from portal.billing.periods import Month
from portal.billing.usage import month_usage
from portal.lib.money import format_price
from portal.market.models import PriceReason, SpotPrice
from portal.market.services import spot_price_history_add
from tests.billing.conftest import at, sync, timeline

MARCH = Month(2026, 3)
CATALOG_SPOT = Decimal("1.29")  # the catalog's preemptible price of the 1x H100


def _spot_history(catalog, region, first: str, changes: int) -> list[SpotPrice]:
    """A price from `first`, then `changes` changes at uneven moments and prices."""
    moment = at(first)
    rows = []
    for n in range(changes + 1):
        price = Decimal("0.8000") + Decimal(n * 37 % 23) * Decimal("0.0731")
        following = moment + timedelta(seconds=1811 + (n * 977) % 1400)
        rows.append(
            SpotPrice(
                region=region,
                instance_type=catalog.h100_1x,
                price=price,
                valid_from=moment,
                valid_until=following if n < changes else None,
                reason=PriceReason.MARKET,
            )
        )
        moment = following
    return spot_price_history_add(rows=rows)


def _expected(rows, start, end) -> Decimal:
    """Σ seconds × price in Python: each second at the price in force, the catalog's before."""
    total = Decimal(0)
    covered_from = rows[0].valid_from
    if start < covered_from:
        total += int((min(end, covered_from) - start).total_seconds()) * CATALOG_SPOT
    for row in rows:
        lo = max(start, row.valid_from)
        hi = min(end, row.valid_until or end)
        if hi > lo:
            total += int((hi - lo).total_seconds()) * row.price
    return total


def cents(value: Decimal) -> Decimal:
    return (value / 3600).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@pytest.fixture
def spot_run(team, catalog, make_instance, clock):
    """A preemptible instance from before the market priced its offer, across 50 changes,
    over a UTC midnight, ended at a moment between two changes."""
    rows = _spot_history(catalog, catalog.us_east, "2026-03-10 20:13:17", 50)
    assert len(rows) == 51
    instance = make_instance(team.organization, preemptible=True, name="spot")
    start, end = at("2026-03-10 19:00:00"), at("2026-03-12 06:21:13")
    assert rows[-2].valid_from < end < rows[-1].valid_from
    timeline(instance, ("2026-03-10 19:00:00", "running"), ("2026-03-12 06:21:13", "interrupted"))
    sync(instance)
    clock.set("2026-04-01 02:00:00")
    return instance, rows, start, end


def test_an_instance_across_50_price_changes_is_billed_every_second_at_its_price(team, spot_run):
    instance, rows, start, end = spot_run
    changes_during = [r for r in rows if start < r.valid_from < end]
    assert len(changes_during) >= 50
    expected = cents(_expected(rows, start, end))
    seconds = int((end - start).total_seconds())

    invoice = services.invoice_issue(organization=team.organization, month=MARCH)
    (line,) = invoice.lines.all()
    assert line.kind == UsageKind.PREEMPTIBLE
    assert line.seconds == seconds
    assert line.amount == expected
    assert invoice.subtotal == expected
    exact = _expected(rows, start, end)
    assert line.unit_price == (exact / seconds).quantize(Decimal("0.0001"), ROUND_HALF_UP)
    assert line.unit_price != CATALOG_SPOT

    # The invoice CSV: the line at its average price, then the seconds at each price.
    invoice_rows = list(csv.reader(io.StringIO(documents.invoice_csv(invoice))))
    (line_row,) = [r for r in invoice_rows if r[:1] == ["1"]]
    assert line_row[-1] == str(expected) and line_row[-2] == str(line.unit_price)
    breakdown = [r for r in invoice_rows if r[:1] == ["1 at"]]
    assert sum(int(r[2]) for r in breakdown) == seconds
    assert cents(sum((Decimal(r[1]) * int(r[2]) for r in breakdown), Decimal(0))) == expected
    assert len(breakdown) == len({r.price for r in rows if r.valid_from < end} | {CATALOG_SPOT})

    # The usage CSV: interval amounts that add up to the same cent, and seconds at each price.
    usage = list(
        documents.usage_csv_rows(
            organization_id=team.organization.pk, month=MARCH, now=at("2026-04-01 02:00:00")
        )
    )
    amounts = [Decimal(r[10]) for r in usage[1:] if len(r) >= 11 and r[4] == "preemptible"]
    assert (sum(amounts, Decimal(0))).quantize(Decimal("0.01"), ROUND_HALF_UP) == expected
    at_price = [r for r in usage if r[:1] == ["at spot price"]]
    assert sum(int(r[6]) for r in at_price) == seconds
    assert cents(sum((Decimal(r[5]) * int(r[6]) for r in at_price), Decimal(0))) == expected


def test_the_billing_page_figures_and_the_month_so_far_agree(team, spot_run, clock):
    instance, rows, start, end = spot_run
    expected = cents(_expected(rows, start, end))
    used = month_usage(organization_id=team.organization.pk, month=MARCH, now=clock())
    (line,) = used.lines
    assert line.amount == expected and line.averaged
    assert used.spend == expected
    (per_instance,), _count = used.per_instance()
    assert per_instance.amount == expected
    # Each UTC day is rounded on its own (three days here): within two cents of the line.
    assert len(used.per_day) == 3
    assert abs(sum(used.per_day.values()) - expected) <= Decimal("0.02")


def test_the_billing_page_shows_the_average_and_the_seconds_at_each_price(
    team, spot_run, client_for
):
    instance, rows, start, end = spot_run
    page = client_for(team.owner.user).get(
        reverse("billing:overview", args=[team.organization.slug]) + "?month=2026-03"
    )
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="spot-breakdown"' in html
    overview = page.context["o"]
    ((line, prices),) = overview.spot_breakdowns
    assert sum(seconds for _, seconds in prices) == line.seconds
    assert f"average {format_price(line.unit_price, 'USD')}" in html


def test_a_running_instance_costs_the_spot_price_now_in_the_run_rate(
    team, catalog, make_instance, clock
):
    rows = _spot_history(catalog, catalog.us_east, "2026-03-15 08:00:00", 3)
    instance = make_instance(team.organization, preemptible=True, name="spot")
    timeline(instance, ("2026-03-15 09:00:00", "running"))
    sync(instance)
    now = rows[-1].valid_from + timedelta(minutes=10)
    clock.moment = now
    used = month_usage(organization_id=team.organization.pk, month=MARCH, now=now)
    assert used.run_rate == rows[-1].price
    start = at("2026-03-15 09:00:00")
    assert used.spend == cents(_expected(rows, start, now))
    assert rating.hourly_run_rate(organization_id=team.organization.pk, now=now) == rows[-1].price


def test_before_the_market_prices_anything_the_breakdown_is_all_at_the_catalog_price(
    team, make_instance, client_for, clock
):
    instance = make_instance(team.organization, preemptible=True, name="spot")
    timeline(instance, ("2026-03-10 19:00:00", "running"), ("2026-03-11 07:00:00", "interrupted"))
    sync(instance)
    clock.set("2026-04-01 02:00:00")

    page = client_for(team.owner.user).get(
        reverse("billing:overview", args=[team.organization.slug]) + "?month=2026-03"
    )

    ((line, prices),) = page.context["o"].spot_breakdowns
    assert prices == [(CATALOG_SPOT, 12 * 3600)] and line.unit_price == CATALOG_SPOT
    assert (
        rating.spot_slices(
            organization_id=team.organization.pk, start=MARCH.start, end=MARCH.end, now=clock()
        )
        == []
    )
