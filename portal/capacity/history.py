"""Recording the fleet over time (see models.CapacityPeriod)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection

from portal.capacity.models import PERIOD_SECONDS, CapacityPeriod


@dataclass(frozen=True)
class Sample:
    region: str
    gpu_model: str
    fleet: int
    internal: int
    on_demand: int
    preemptible: int
    reserved: int
    free: int


FIELDS = ("fleet", "internal", "on_demand", "preemptible", "reserved", "free")


def period_start(at: datetime) -> datetime:
    seconds = int(at.timestamp()) // PERIOD_SECONDS * PERIOD_SECONDS
    return datetime.fromtimestamp(seconds, UTC)


def history_record(*, at: datetime, samples: list[Sample]) -> None:
    """Add one sample per place to the rows of `at`'s period (made if missing).

    One statement for every place (an insert that adds to the row already there), as it runs
    after every capacity report: concurrent reports add to the same row, never lose a sample.
    """
    if not samples:
        return
    start = period_start(at)
    quote = connection.ops.quote_name
    table = quote(CapacityPeriod._meta.db_table)
    columns = ("region", "gpu_model", "start", "samples", *FIELDS)
    rows = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(samples))
    params: list[Any] = []
    for sample in samples:
        params += [sample.region, sample.gpu_model, start, 1]
        params += [max(0, getattr(sample, name)) for name in FIELDS]
    added = ", ".join(
        f"{quote(name)} = {table}.{quote(name)} + excluded.{quote(name)}"
        for name in ("samples", *FIELDS)
    )
    key = ", ".join(quote(name) for name in ("region", "gpu_model", "start"))
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) VALUES {rows} "  # noqa: S608 - our names
        f"ON CONFLICT ({key}) DO UPDATE SET {added}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
