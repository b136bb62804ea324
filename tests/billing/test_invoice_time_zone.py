"""Invoices are in UTC whoever reads them; the console is in the reader's time zone.

An invoice issued at 20:00 UTC on April 1 is already April 2 in Tokyo: a person whose time zone
is Asia/Tokyo still reads "April 1" on the invoice's page, in the invoice list and in its PDF,
while an instance's timeline shows them their own clock.
"""

import shutil
import subprocess
from datetime import date

import pytest
from django.urls import reverse

from tests.billing.conftest import at, timeline
from tests.factories import InvoiceFactory


@pytest.fixture
def in_tokyo(team):
    person = team.owner.user
    person.time_zone = "Asia/Tokyo"
    person.save(update_fields=["time_zone"])
    return person


@pytest.fixture
def invoice(team):
    """March's invoice, issued April 1 at 20:00 UTC (05:00 on April 2 in Tokyo), due 14 days on."""
    return InvoiceFactory(
        organization=team.organization,
        number="BF-2026-03-0001",
        month=date(2026, 3, 1),
        period_start=at("2026-03-01 00:00:00"),
        period_end=at("2026-04-01 00:00:00"),
        issued_at=at("2026-04-01 20:00:00"),
    )


def test_the_invoice_page_shows_utc_dates_to_a_person_in_tokyo(in_tokyo, invoice, client_for):
    page = client_for(in_tokyo).get(reverse("billing:invoice", args=["acme", invoice.pk]))

    text = page.content.decode()
    assert "issued April 1, 2026" in text
    assert "due April 15, 2026" in text
    assert "Mar 1 – Mar 31, 2026 (UTC)" in text
    assert "April 2, 2026" not in text and "April 16, 2026" not in text


def test_the_invoice_list_shows_utc_dates_to_a_person_in_tokyo(in_tokyo, invoice, client_for):
    page = client_for(in_tokyo).get(reverse("billing:invoices", args=["acme"]))

    row = page.content.decode().split(f'data-invoice="{invoice.number}"')[1].split("</tr>")[0]
    assert "Apr 1, 2026" in row and "Apr 15, 2026" in row
    assert "Apr 2, 2026" not in row and "Apr 16, 2026" not in row


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="pdftotext (poppler-utils) not installed")
def test_the_invoice_pdf_shows_utc_dates_to_a_person_in_tokyo(
    in_tokyo, invoice, client_for, tmp_path
):
    pdf = client_for(in_tokyo).get(reverse("billing:invoice_pdf", args=["acme", invoice.pk]))
    path = tmp_path / "invoice.pdf"
    path.write_bytes(pdf.content)

    pdftotext = shutil.which("pdftotext") or "pdftotext"
    text = subprocess.run(  # noqa: S603 (a fixed program on a file of our own)
        [pdftotext, "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "April 1, 2026" in text  # issued
    assert "April 15, 2026" in text  # due
    assert "April 2, 2026" not in text and "April 16, 2026" not in text


def test_the_instance_timeline_shows_a_person_in_tokyo_their_own_clock(
    team, in_tokyo, make_instance, client_for
):
    instance = make_instance(team.organization, name="trainer")
    timeline(instance, ("2026-03-10 23:30:00", "running"))
    url = reverse("instances:detail", args=["acme", instance.pk])

    in_tokyo_page = client_for(in_tokyo).get(url).content.decode()
    assert 'title="2026-03-11 08:30:00 JST">08:30:00</time>' in in_tokyo_page

    without_a_time_zone = client_for(team.member.user).get(url).content.decode()
    assert 'title="2026-03-10 23:30:00 UTC">23:30:00</time>' in without_a_time_zone
