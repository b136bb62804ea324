"""Volume storage on the invoice and in the usage CSV: GB-months by the second.

A volume's size periods (`portal.volumes.models.VolumeSize`: a size from a start to an end, open
while the volume exists) are cut at the changes of the region's storage price
(`portal.catalog.models.StoragePrice`, valid from a date until the next one) and clipped to the
period; each piece is its size × its whole seconds (GB-seconds) at the price in force. A GB-month
is 730 hours, so a piece costs GB-seconds × price per GB-month / (730 × 3600). Storage before the
region's first price is not billed.

All of it is one SQL query (a window function gives each price its end), grouped per region and
price for the invoice lines, or per volume and price for the CSV; amounts are rounded to cents
once, per invoice line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection

from portal.billing.models import UsageKind
from portal.billing.money import SECONDS_PER_HOUR, cents
from portal.billing.rating import Line
from portal.catalog.models import HOURS_PER_MONTH, Region, StoragePrice
from portal.volumes.models import Volume, VolumeSize

SECONDS_PER_MONTH = HOURS_PER_MONTH * SECONDS_PER_HOUR  # 2,628,000


def _seconds_sql(start: str, end: str) -> str:
    if connection.vendor == "sqlite":
        return f"CAST(ROUND((julianday({end}) - julianday({start})) * 86400) AS INTEGER)"
    return f"CAST(date_part('epoch', {end} - {start}) AS BIGINT)"


def _pieces_sql(group: str) -> str:
    sizes = VolumeSize._meta.db_table
    volumes = Volume._meta.db_table
    prices = StoragePrice._meta.db_table
    far = "'9999-12-31'" if connection.vendor == "sqlite" else "'infinity'::timestamptz"
    return f"""
        WITH prices AS (
            SELECT region_id, per_gb_month, currency, valid_from,
                   LEAD(valid_from) OVER (PARTITION BY region_id ORDER BY valid_from) AS valid_to
            FROM {prices}
        ),
        pieces AS (
            SELECT v.id AS volume_id, v.name AS volume_name, v.region_id, s.size_gb,
                   p.per_gb_month, p.currency,
                   CASE WHEN s.start > p.valid_from THEN s.start ELSE p.valid_from END AS a0,
                   COALESCE(s."end", %(now)s) AS b0,
                   COALESCE(p.valid_to, {far}) AS b1
            FROM {sizes} s
            JOIN {volumes} v ON v.id = s.volume_id
            JOIN prices p ON p.region_id = v.region_id
            WHERE v.organization_id = %(organization_id)s
              AND s.start < %(end)s AND COALESCE(s."end", %(now)s) > %(start)s
              AND p.valid_from < %(end)s
        ),
        clipped AS (
            SELECT volume_id, volume_name, region_id, size_gb, per_gb_month, currency,
                   CASE WHEN a0 > %(start)s THEN a0 ELSE %(start)s END AS a,
                   CASE WHEN b0 < b1 THEN
                        CASE WHEN b0 < %(end)s THEN b0 ELSE %(end)s END
                   ELSE
                        CASE WHEN b1 < %(end)s THEN b1 ELSE %(end)s END
                   END AS b
            FROM pieces
        ),
        rated AS (
            SELECT *, {_seconds_sql("a", "b")} AS seconds FROM clipped WHERE b > a
        )
        SELECT {group}, per_gb_month, currency,
               SUM(seconds) AS seconds, SUM(seconds * size_gb) AS gb_seconds,
               MIN(a) AS first_start, MAX(b) AS last_end
        FROM rated WHERE seconds > 0
        GROUP BY {group}, per_gb_month, currency
        ORDER BY MIN(a), {group}
    """  # noqa: S608 - table names and groups are this module's constants, values are parameters


def _rows(group: str, *, organization_id: int, start: datetime, end: datetime, now: datetime):
    if now <= start:
        return []
    params: dict[str, Any] = {
        "organization_id": organization_id,
        "start": start,
        "end": end,
        "now": min(now, end),
    }
    with connection.cursor() as cursor:
        cursor.execute(_pieces_sql(group), params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _exact(gb_seconds: int, per_gb_month: Decimal) -> Decimal:
    return Decimal(gb_seconds) * Decimal(per_gb_month) / SECONDS_PER_MONTH


@dataclass(frozen=True)
class StorageLine(Line):
    """An invoice line of volume storage: `seconds` are GB-seconds, the unit price is per
    GB-month."""

    @property
    def description(self) -> str:
        return f"Volume storage · {self.region_code}"

    @property
    def gb_months(self) -> Decimal:
        return Decimal(self.seconds) / SECONDS_PER_MONTH


def storage_lines(
    *, organization_id: int, start: datetime, end: datetime, now: datetime
) -> list[Line]:
    """One invoice line per region and price per GB-month."""
    rows = _rows("region_id", organization_id=organization_id, start=start, end=end, now=now)
    codes = dict(
        Region.objects.filter(pk__in={r["region_id"] for r in rows}).values_list("pk", "code")
    )
    return [
        StorageLine(
            instance_type_id=None,
            instance_type_name="Volume storage",
            instance_type_code="storage",
            region_id=row["region_id"],
            region_code=codes[row["region_id"]],
            kind=UsageKind.STORAGE,
            unit_price=Decimal(row["per_gb_month"]),
            currency=row["currency"],
            seconds=int(row["gb_seconds"]),
            gpu_seconds=0,
            amount=cents(_exact(int(row["gb_seconds"]), Decimal(row["per_gb_month"]))),
            first_start=row["first_start"],
        )
        for row in rows
    ]


def storage_csv_rows(*, organization_id: int, start: datetime, end: datetime, now: datetime):
    """Per volume and price: the usage CSV's rows (after the instances')."""
    rows = _rows(
        "volume_id, volume_name, region_id, size_gb",
        organization_id=organization_id,
        start=start,
        end=end,
        now=now,
    )
    codes = dict(
        Region.objects.filter(pk__in={r["region_id"] for r in rows}).values_list("pk", "code")
    )
    for row in rows:
        yield {
            "volume_id": row["volume_id"],
            "name": row["volume_name"],
            "region": codes[row["region_id"]],
            "size_gb": row["size_gb"],
            "start": row["first_start"],
            "end": row["last_end"],
            "seconds": int(row["seconds"]),
            "gb_seconds": int(row["gb_seconds"]),
            "per_gb_month": Decimal(row["per_gb_month"]),
            "currency": row["currency"],
            "amount": _exact(int(row["gb_seconds"]), Decimal(row["per_gb_month"])),
        }
