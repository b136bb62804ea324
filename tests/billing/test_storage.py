"""Volume storage billed per GB-month (730 hours) by the second, at the catalog's storage price
in force, on the invoice and in the usage CSV; checked to the cent."""

import csv
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from portal.billing import services
from portal.billing.periods import Month
from portal.billing.storage import storage_lines
from portal.catalog.models import StoragePrice
from portal.volumes.models import State, Volume, VolumeSize
from tests.billing.conftest import at

MARCH = Month(2026, 3)


@pytest.fixture
def prices(catalog):
    """$0.10 per GB-month in us-east-1 from February, $0.12 from March 18; $0.20 in eu-west-1."""
    for valid_from, price in (("2026-02-01 00:00:00", "0.10"), ("2026-03-18 00:00:00", "0.12")):
        StoragePrice.objects.create(
            region=catalog.us_east, valid_from=at(valid_from), per_gb_month=Decimal(price)
        )
    StoragePrice.objects.create(
        region=catalog.eu_west, valid_from=at("2026-01-01 00:00:00"), per_gb_month=Decimal("0.20")
    )


def volume(organization, region, name, *sizes, deleted=None):
    """A volume with its size periods: `(size_gb, "from")` each, the last open unless
    `deleted` (a time) ends it."""
    made = Volume.objects.create(
        organization=organization,
        region=region,
        name=name,
        size_gb=sizes[-1][0],
        state=State.DELETED if deleted else State.AVAILABLE,
        created_at=at(sizes[0][1]),
        deleted_at=at(deleted) if deleted else None,
    )
    ends = [at(start) for _size, start in sizes[1:]] + [at(deleted) if deleted else None]
    for (size, start), end in zip(sizes, ends, strict=True):
        VolumeSize.objects.create(volume=made, size_gb=size, start=at(start), end=end)
    return made


def test_a_resized_volume_across_a_price_change_to_the_cent(team, catalog, prices, clock):
    # 100 GB for 5 days at $0.10, 300 GB for 3 days at $0.10, 300 GB for 2 days at $0.12.
    volume(
        team.organization,
        catalog.us_east,
        "datasets",
        (100, "2026-03-10 00:00:00"),
        (300, "2026-03-15 00:00:00"),
        deleted="2026-03-20 00:00:00",
    )
    clock.set("2026-04-01 02:00:00")

    invoice = services.invoice_issue(organization=team.organization, month=MARCH)

    lines = [
        (line.kind, line.unit_price, line.seconds, line.amount) for line in invoice.lines.all()
    ]
    # GB-seconds: 100 × 432,000 + 300 × 259,200 = 120,960,000 at $0.10 → $4.6027… → $4.60;
    # 300 × 172,800 = 51,840,000 at $0.12 → $2.3671… → $2.37.
    assert lines == [
        ("storage", Decimal("0.10"), 120_960_000, Decimal("4.60")),
        ("storage", Decimal("0.12"), 51_840_000, Decimal("2.37")),
    ]
    assert invoice.subtotal == Decimal("6.97")
    assert all(line.instance_type_id is None for line in invoice.lines.all())


def test_a_volume_kept_the_whole_month_and_still_there(team, catalog, prices, clock):
    volume(team.organization, catalog.us_east, "checkpoints", (100, "2026-02-25 00:00:00"))
    clock.set("2026-04-01 02:00:00")

    lines = storage_lines(
        organization_id=team.organization.pk, start=MARCH.start, end=MARCH.end, now=clock()
    )

    # 17 days at $0.10 (146,880,000 GB-s → $5.5890…), 14 days at $0.12 (120,960,000 → $5.5232…).
    assert [(line.unit_price, line.seconds, line.amount) for line in lines] == [
        (Decimal("0.10"), 146_880_000, Decimal("5.59")),
        (Decimal("0.12"), 120_960_000, Decimal("5.52")),
    ]


def test_the_month_so_far_counts_up_to_now(team, catalog, prices, clock):
    volume(team.organization, catalog.eu_west, "eu", (50, "2026-03-01 00:00:00"))
    clock.set("2026-03-11 00:00:00")  # 10 days: 50 × 864,000 = 43,200,000 GB-s at $0.20

    (line,) = storage_lines(
        organization_id=team.organization.pk, start=MARCH.start, end=MARCH.end, now=clock()
    )
    assert (line.region_code, line.seconds, line.amount) == (
        "eu-west-1",
        43_200_000,
        Decimal("3.29"),
    )


def test_storage_before_the_first_price_and_of_other_organizations_is_not_billed(
    team, outsider, catalog, clock
):
    StoragePrice.objects.create(
        region=catalog.us_east, valid_from=at("2026-03-31 00:00:00"), per_gb_month=Decimal("1")
    )
    volume(team.organization, catalog.us_east, "early", (730, "2026-03-01 00:00:00"))
    volume(outsider.organization, catalog.us_east, "theirs", (999, "2026-03-01 00:00:00"))
    clock.set("2026-04-01 02:00:00")

    (line,) = storage_lines(
        organization_id=team.organization.pk, start=MARCH.start, end=MARCH.end, now=clock()
    )
    # One day of 730 GB at $1 per GB-month: 730 × 86,400 / 2,628,000 = $24.00.
    assert (line.seconds, line.amount) == (730 * 86_400, Decimal("24.00"))


def test_the_invoice_page_pdf_and_csv_show_the_storage_line(
    team, catalog, prices, clock, client_for
):
    volume(
        team.organization,
        catalog.us_east,
        "datasets",
        (100, "2026-03-10 00:00:00"),
        deleted="2026-03-20 00:00:00",
    )
    clock.set("2026-04-01 02:00:00")
    invoice = services.invoice_issue(organization=team.organization, month=MARCH)
    client = client_for(team.owner.user)

    page = client.get(reverse("billing:invoice", args=["acme", invoice.pk])).content.decode()
    assert "Volume storage" in page and "GB-mo" in page
    pdf = client.get(reverse("billing:invoice_pdf", args=["acme", invoice.pk]))
    assert pdf.content.startswith(b"%PDF")
    text = client.get(reverse("billing:invoice_csv", args=["acme", invoice.pk])).content.decode()
    rows = [r for r in csv.reader(io.StringIO(text)) if r and r[0].isdigit()]
    # 100 GB × 8 days = 69,120,000 GB-s at $0.10 → $2.6301… → $2.63; then the price is $0.12:
    # 100 GB × 2 days = 17,280,000 GB-s → $0.7890… → $0.79.
    assert [(r[1], r[2], r[3], r[4], r[7], r[8]) for r in rows] == [
        ("storage", "us-east-1", "storage", "69120000", "0.1000", "2.63"),
        ("storage", "us-east-1", "storage", "17280000", "0.1200", "0.79"),
    ]
    assert invoice.subtotal == Decimal("3.42")


def test_the_usage_csv_lists_each_volume(team, catalog, prices, clock, client_for):
    volume(
        team.organization,
        catalog.us_east,
        "datasets",
        (100, "2026-03-10 00:00:00"),
        (300, "2026-03-15 00:00:00"),
    )
    clock.set("2026-03-16 00:00:00")

    response = client_for(team.owner.user).get(reverse("billing:usage_csv", args=["acme"]))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))

    assert rows[0][-2:] == ["size (GB)", "price per GB-month"]
    storage = [row for row in rows[1:] if row[4] == "storage"]
    assert [(r[0], r[5], r[6], r[7], r[10], r[11], r[12]) for r in storage] == [
        # 5 days of 100 GB: 43,200,000 GB-s × 0.10 / 2,628,000
        (
            "datasets",
            "2026-03-10T00:00:00Z",
            "2026-03-15T00:00:00Z",
            "432000",
            "1.643836",
            "100",
            "0.1000",
        ),
        # 1 day of 300 GB so far
        ("datasets", "2026-03-15T00:00:00Z", "ongoing", "86400", "0.986301", "300", "0.1000"),
    ]
