"""An issued invoice as a PDF (WeasyPrint) and as CSV; the usage of a month as CSV.

Every CSV goes through portal.lib.csvsafe, so no customer- or staff-written text runs as a formula.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from decimal import Decimal

from django.template.loader import render_to_string

from portal.billing import rating
from portal.billing.conf import setting
from portal.billing.models import Invoice, UsageInterval, UsageKind
from portal.billing.money import SECONDS_PER_HOUR
from portal.billing.payments import get_provider
from portal.billing.periods import Month
from portal.billing.selectors import invoice_view
from portal.billing.storage import storage_csv_rows
from portal.lib import csvsafe
from portal.lib.money import format_amount


def invoice_context(invoice: Invoice) -> dict:
    view = invoice_view(invoice=invoice)
    return {
        "view": view,
        "invoice": invoice,
        "month": Month.of(invoice.month),
        "issuer": setting("BILLING_ISSUER"),
        "issuer_address": setting("BILLING_ISSUER_ADDRESS"),
        "instructions": get_provider(invoice.payment_provider).payment_instructions(invoice),
        "tax_percent": (invoice.tax_rate * 100).normalize(),
        "last_day": (invoice.period_end - timedelta(seconds=1)).date(),
    }


def invoice_pdf(invoice: Invoice) -> bytes:
    from weasyprint import HTML

    html = render_to_string("billing/invoice_pdf.html", invoice_context(invoice))
    return HTML(string=html).write_pdf()


def invoice_filename(invoice: Invoice, extension: str) -> str:
    return f"{invoice.number}.{extension}"


def invoice_csv(invoice: Invoice) -> str:
    out = io.StringIO()
    writer = csvsafe.writer(out)
    writer.writerow(["invoice", invoice.number])
    writer.writerow(["customer", invoice.customer_name])
    writer.writerow(
        ["period", f"{invoice.period_start:%Y-%m-%d}", f"{invoice.period_end:%Y-%m-%d}"]
    )
    writer.writerow(["currency", invoice.currency])
    writer.writerow([])
    writer.writerow(
        [
            "line",
            "instance type",
            "region",
            "kind",
            "seconds",
            "hours",
            "gpu hours",
            "unit price per hour",
            "amount",
        ]
    )
    # A storage line: "seconds" are GB-seconds, "hours" GB-hours, the unit price per GB-month.
    for line in invoice.lines.select_related("instance_type", "region"):
        writer.writerow(
            [
                line.position,
                line.instance_type.code if line.instance_type else "storage",
                line.region.code,
                line.kind,
                line.seconds,
                f"{line.hours:.4f}",
                f"{line.gpu_hours:.4f}",
                line.unit_price,
                line.amount,
            ]
        )
        # A preemptible line's price is the average paid: the seconds at each spot price.
        for price, seconds in line.price_breakdown:
            writer.writerow(
                [
                    f"{line.position} at",
                    price,
                    seconds,
                    f"{Decimal(seconds) / SECONDS_PER_HOUR:.4f}",
                    f"{Decimal(price) * seconds / SECONDS_PER_HOUR:.6f}",
                ]
            )
    writer.writerow([])
    for label, value in (
        ("subtotal", invoice.subtotal),
        ("credits", -invoice.credits_applied),
        (f"tax {invoice.tax_rate * 100:.2f} %", invoice.tax),
        ("total", invoice.total),
        ("prepaid balance", -invoice.prepaid_applied),
        ("amount due", invoice.amount_due),
    ):
        writer.writerow([label, value])
    for note in invoice.credit_notes.all():
        writer.writerow([f"credit note {note.number}", -note.amount, note.reason])
    return out.getvalue()


CSV_HEADER = [
    "instance",
    "instance id",
    "instance type",
    "region",
    "kind",
    "start (UTC)",
    "end (UTC)",
    "seconds",
    "unit price per hour",
    "currency",
    "amount",
    # Volume rows only (kind storage, after the instances'): the size and its price.
    "size (GB)",
    "price per GB-month",
]


def _iso(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


SPOT_HEADER = [
    "preemptible seconds at each price",
    "instance",
    "instance id",
    "instance type",
    "region",
    "price per hour",
    "seconds",
    "amount",
]


def usage_csv_rows(*, organization_id: int, month: Month, now: datetime):
    """The month's usage intervals (clipped to the month), header first, streamed.

    A preemptible interval's unit price is the average it paid (the spot price moves); a
    second section gives each preemptible interval's seconds at each price."""
    yield CSV_HEADER
    rows = (
        rating.rated(
            UsageInterval.objects.filter(organization_id=organization_id),
            start=month.start,
            end=month.end,
            now=now,
        )
        .order_by("start", "instance_id")
        .values_list(
            "instance__name",
            "instance_id",
            "instance_type__code",
            "region__code",
            "kind",
            "start",
            "end",
            "seconds",
            "unit_price",
            "currency",
            "price_seconds",
            "id",
        )
    )
    preemptible: dict[int, tuple[int, Decimal]] = {}
    described: dict[int, tuple[str, int, str, str]] = {}
    for (
        name,
        pk,
        itype,
        region,
        kind,
        start,
        end,
        seconds,
        price,
        currency,
        price_seconds,
        interval_id,
    ) in rows.iterator(chunk_size=2000):
        start = max(start, month.start)
        end = min(end, month.end) if end else None
        if kind == UsageKind.PREEMPTIBLE:
            preemptible[interval_id] = (seconds, price)
            described[interval_id] = (name, pk, itype, region)
            price = rating.average_price(price_seconds, seconds)
        yield [
            name,
            pk,
            itype,
            region,
            kind,
            _iso(start),
            _iso(end) or "ongoing",
            seconds,
            price,
            currency,
            f"{Decimal(price_seconds) / SECONDS_PER_HOUR:.6f}",
            "",
            "",
        ]
    for row in storage_csv_rows(
        organization_id=organization_id, start=month.start, end=month.end, now=now
    ):
        ongoing = row["end"] >= min(now, month.end) and row["end"] < month.end
        yield [
            row["name"],
            row["volume_id"],
            "volume",
            row["region"],
            "storage",
            _iso(row["start"]),
            "ongoing" if ongoing else _iso(row["end"]),
            row["seconds"],
            "",
            row["currency"],
            f"{row['amount']:.6f}",
            row["size_gb"],
            row["per_gb_month"],
        ]
    if not preemptible:
        return
    slices = rating.spot_slices(
        organization_id=organization_id, start=month.start, end=month.end, now=now
    )
    yield []
    yield SPOT_HEADER
    for interval_id, prices in rating.interval_breakdown(slices, preemptible).items():
        for price, seconds in prices:
            yield [
                "at spot price",
                *described[interval_id],
                price,
                seconds,
                f"{price * seconds / SECONDS_PER_HOUR:.6f}",
            ]


def stream_csv(rows):
    """The rows as formula-safe CSV lines (see portal.lib.csvsafe)."""
    return csvsafe.stream(rows)


__all__ = ["format_amount", "invoice_csv", "invoice_pdf", "stream_csv", "usage_csv_rows"]
