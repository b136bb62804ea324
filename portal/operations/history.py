"""The fleet over time for the overview's charts: per region and GPU model, over the last
24 hours, 7 days or 30 days, from the capacity history (portal.capacity), usage and reclaims."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import (
    Case,
    Count,
    F,
    FloatField,
    Func,
    IntegerField,
    Max,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Cast, Greatest
from django.utils import timezone

from portal.billing.models import UsageInterval
from portal.billing.money import cents
from portal.capacity.models import PERIOD_SECONDS, CapacityPeriod
from portal.catalog.models import GpuModel, Region
from portal.operations import kept
from portal.operations import revenue as usage_revenue
from portal.operations.kept import read
from portal.quotas.models import Quota
from portal.reclaims.models import OrderState, ReclaimOrder, ReclaimVictim
from portal.web.sql import column, table

# range key -> (label, bucket length, number of buckets)
RANGES: dict[str, tuple[str, timedelta, int]] = {
    "24h": ("24 hours", timedelta(hours=1), 24),
    "7d": ("7 days", timedelta(hours=6), 28),
    "30d": ("30 days", timedelta(days=1), 30),
}


@dataclass
class Bucket:
    start: datetime
    fleet: float = 0.0  # average GPUs over the bucket (of the periods with samples)
    internal: float = 0.0
    sold: float = 0.0
    free: float = 0.0
    fill_rate: float | None = None  # sold over not used internally
    orders: int = 0
    orders_met: int = 0
    gpus_reclaimed: int = 0
    _periods: int = 0


@dataclass
class FleetHistory:
    region: str
    gpu_model: str
    range_key: str
    range_label: str
    buckets: list[Bucket]
    fill_rate: float | None
    idle_gpu_hours: float
    sold_gpu_hours: float
    revenue: Decimal
    revenue_per_idle_gpu_hour: Decimal | None
    orders: int
    orders_met: int
    orders_open: int
    granted_quota: int
    fleet_now: int | None

    @property
    def has_data(self) -> bool:
        return any(b._periods for b in self.buckets)


class _BucketIndex(Func):
    """(start - range start) // step, in whole buckets: exact (EXTRACT gives a NUMERIC)."""

    output_field = IntegerField()

    def __init__(self, range_start: datetime, step: timedelta) -> None:
        super().__init__(F("start") - Value(range_start), Value(int(step.total_seconds())))

    def as_sql(self, compiler, connection, function=None, template=None, arg_joiner=None, **extra):
        since_sql, since_params = compiler.compile(self.source_expressions[0])
        step_sql, step_params = compiler.compile(self.source_expressions[1])
        sql = f"CAST(FLOOR(EXTRACT(EPOCH FROM {since_sql}) / {step_sql}) AS INTEGER)"
        return sql, [*since_params, *step_params]


def _bucket(*, start: datetime, step: timedelta, count: int) -> Func | Case:
    """The bucket of a period (the history is filtered to [start, start + step × count)):
    arithmetic on PostgreSQL, one comparison per bucket elsewhere (SQLite has no EXTRACT)."""
    if connection.vendor == "postgresql":
        return _BucketIndex(start, step)
    return Case(
        *[When(start__lt=start + step * (i + 1), then=Value(i)) for i in range(count - 1)],
        default=Value(count - 1),
        output_field=IntegerField(),
    )


# --- The history's sums kept between views ------------------------------------------------------
#
# A range's sums per bucket change only when a capacity report adds a sample (the receiver of
# portal/operations/receivers.py, or a row written through the ORM) or when `now` enters the
# next 5-minute period: the rows are whole periods (`period_start`), so which rows a range
# holds and which bucket each falls in is the same for every `now` of (T - 5 min, T]. Kept per
# place, range and T under a version that each such write replaces (30 days are 8,640 rows per
# place, ~8 ms of PostgreSQL per view). Rows off the periods' grid are summed at every view.

KEPT_FORMAT = 1


def history_version() -> str:
    """The history's version (`kept.HISTORY`)."""
    return kept.versions(kept.HISTORY)[kept.HISTORY]


def history_changed() -> None:
    """The capacity history was written: its kept sums are not read again (now, and after the
    writer's commit, when a reader may have kept the rows as they were before it)."""
    kept.changed(kept.HISTORY)


class _OffGrid(Func):
    """Seconds past the start of its 5-minute period (0 for every row history_record writes)."""

    output_field = FloatField()

    def as_sql(self, compiler, connection, function=None, template=None, arg_joiner=None, **extra):
        start_sql, params = compiler.compile(self.source_expressions[0])
        return f"MOD(CAST(EXTRACT(EPOCH FROM {start_sql}) AS NUMERIC), {PERIOD_SECONDS})", params


def _period_end(at: datetime) -> datetime:
    """T, the end of the 5-minute period (T - 5 min, T] that `at` falls in."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    periods = -(-(at - epoch) // timedelta(seconds=PERIOD_SECONDS))
    return epoch + periods * timedelta(seconds=PERIOD_SECONDS)


def _rows_key(*, region: str, gpu_model: str, range_key: str, now: datetime, version: str) -> str:
    return (
        f"operations:history{KEPT_FORMAT}:{region}:{gpu_model}:{range_key}:"
        f"{int(_period_end(now).timestamp())}:{version}"
    )


def _kept_rows(sums: Callable[[], QuerySet], *, key: str, found: dict[str, Any]) -> list[dict]:
    """The sums per bucket (`sums()`, the query, built only when they are not kept)."""
    if connection.vendor != "postgresql":
        return list(sums())
    rows = found.get(key)
    if rows is None:
        rows = list(sums().annotate(off_grid=Max(_OffGrid(F("start")))))
        if all(not row["off_grid"] for row in rows):
            cache.set(key, rows, timeout=2 * PERIOD_SECONDS)
    return rows


def _latest_key(*, region: str, gpu_model: str, version: str) -> str:
    return f"operations:history{KEPT_FORMAT}:{region}:{gpu_model}:latest:{version}"


def _fleet_now(region: str, gpu_model: str, *, key: str, kept: tuple | None) -> int | None:
    """The place's fleet in its latest period (GPUs, the average of its samples), kept (`kept`,
    under `key`) until the history is written."""
    found = kept
    if found is None:
        latest = (
            CapacityPeriod.objects.filter(region=region, gpu_model=gpu_model)
            .order_by("-start")
            .first()
        )
        found = (round(latest.fleet / (latest.samples or 1)) if latest else None,)
        cache.set(key, found, timeout=2 * PERIOD_SECONDS)
    return found[0]


@functools.cache
def _place_sql() -> tuple[str, str]:
    """The SQL of a place's reclaim orders since a time (when each was made, whether it was
    met, its state, the GPUs of its victims; those that found nothing to reclaim left out)
    and of its granted quota (on-demand and preemptible limits), built once per process from
    the models (the ORM took ~1.5 ms to build both at every view)."""
    order, victim = ReclaimOrder._meta, ReclaimVictim._meta

    def of_place(model: type[ReclaimOrder] | type[Quota], alias: str) -> str:
        """The rows of `model` (as `alias`) in the region and GPU model of the parameters."""
        return (
            f"{table(model)} {alias} "
            f"JOIN {table(Region)} r "
            f"ON r.{column(Region, 'id')} = {alias}.{column(model, 'region')} "
            f"JOIN {table(GpuModel)} g "
            f"ON g.{column(GpuModel, 'id')} = {alias}.{column(model, 'gpu_model')} "
            f"WHERE r.{column(Region, 'code')} = %s AND g.{column(GpuModel, 'code')} = %s"
        )

    orders = (
        f"SELECT o.{column(order, 'created_at')}, o.{column(order, 'met')}, "  # noqa: S608
        f"o.{column(order, 'state')}, (SELECT SUM(v.{column(victim, 'gpus')}) "
        f"FROM {table(victim)} v WHERE v.{column(victim, 'order')} = o.{column(order, 'id')}) "
        f"FROM {of_place(ReclaimOrder, 'o')} AND o.{column(order, 'created_at')} >= %s "
        f"AND o.{column(order, 'state')} <> %s"
    )
    quota = (
        f"SELECT SUM(q.{column(Quota, 'on_demand_limit')}) + "  # noqa: S608
        f"SUM(q.{column(Quota, 'preemptible_limit')}) FROM {of_place(Quota, 'q')}"
    )
    return orders, quota


def fleet_history(
    *,
    region: str,
    gpu_model: str,
    range_key: str = "24h",
    now: datetime | None = None,
    version: str | None = None,
    usage_versions: tuple[str, str] | None = None,
) -> FleetHistory:
    """A fixed number of queries: history rows, usage, orders, quotas. `version` (the
    history's, `kept.HISTORY`) and `usage_versions` (`revenue.usage_versions()`): read by the
    caller with its own."""
    now = now or timezone.now()
    label, step, count = RANGES.get(range_key, RANGES["24h"])
    range_key = range_key if range_key in RANGES else "24h"
    end = now
    start = end - step * count
    buckets = [Bucket(start=start + step * i) for i in range(count)]

    def index(at: datetime) -> int:
        return min(count - 1, max(0, int((at - start) / step)))

    hours = PERIOD_SECONDS / 3600
    idle_hours = sold_hours = 0.0
    # Summed per bucket by the database: 30 days are 8,640 periods per place.
    bucket = _bucket(start=start, step=step, count=count)
    samples = Cast(Greatest(F("samples"), Value(1)), FloatField())

    def per_sample(expression) -> CombinedExpression:
        return Cast(expression, FloatField()) / samples

    sold = F("on_demand") + F("preemptible") + F("reserved")

    def sums() -> QuerySet:
        return (
            CapacityPeriod.objects.filter(
                region=region, gpu_model=gpu_model, start__gte=start, start__lt=end
            )
            .order_by()
            .annotate(bucket=bucket)
            .values("bucket")
            .annotate(
                periods=Count("pk"),
                fleet_sum=Sum(per_sample(F("fleet"))),
                internal_sum=Sum(per_sample(F("internal"))),
                sold_sum=Sum(per_sample(sold)),
                free_sum=Sum(per_sample(F("free"))),
                idle_sum=Sum(
                    Greatest(per_sample(F("fleet")) - per_sample(F("internal")), Value(0.0))
                ),
            )
        )

    # What is kept of the place, read in one round trip.
    version = version or history_version()
    usage_versions = usage_versions or usage_revenue.usage_versions()
    usage_name = f"place:{region}:{gpu_model}"
    rows_key = _rows_key(
        region=region, gpu_model=gpu_model, range_key=range_key, now=now, version=version
    )
    latest_key = _latest_key(region=region, gpu_model=gpu_model, version=version)
    found = read(
        [
            rows_key,
            latest_key,
            *usage_revenue.kept_keys(
                name=usage_name,
                start=start,
                end=end,
                now=now,
                by_organization=False,
                versions=usage_versions,
            ),
        ]
    )
    for row in _kept_rows(sums, key=rows_key, found=found):
        b = buckets[row["bucket"]]
        b._periods = row["periods"]
        b.fleet, b.internal = row["fleet_sum"] / b._periods, row["internal_sum"] / b._periods
        b.sold, b.free = row["sold_sum"] / b._periods, row["free_sum"] / b._periods
        spare = b.fleet - b.internal
        b.fill_rate = min(1.0, b.sold / spare) if spare > 0 else None
        idle_hours += row["idle_sum"] * hours
        sold_hours += row["sold_sum"] * hours

    orders_sql, quota_sql = _place_sql()
    with connection.cursor() as cursor:
        cursor.execute(orders_sql, [region, gpu_model, start, OrderState.NOTHING])
        orders = cursor.fetchall()
        cursor.execute(quota_sql, [region, gpu_model])
        ((granted,),) = cursor.fetchall()
    counts = {"all": 0, "met": 0, "open": 0}  # the orders, those met and those open
    for created_at, met, state, reclaimed in orders:
        b = buckets[index(created_at)]
        b.orders += 1
        b.orders_met += 1 if met else 0
        b.gpus_reclaimed += reclaimed or 0
        counts["all"] += 1
        counts["met"] += 1 if met else 0
        counts["open"] += 1 if state == OrderState.OPEN else 0

    usage = usage_revenue.kept_price_seconds(  # the whole days before today kept between views
        UsageInterval.objects.filter(region__code=region, instance_type__gpu_model__code=gpu_model),
        name=usage_name,
        start=start,
        end=end,
        now=now,
        versions=usage_versions,
        found=found,
    )
    revenue = cents(usage / Decimal(3600))
    fleet_now = _fleet_now(region, gpu_model, key=latest_key, kept=found.get(latest_key))
    return FleetHistory(
        region=region,
        gpu_model=gpu_model,
        range_key=range_key,
        range_label=label,
        buckets=buckets,
        fill_rate=min(1.0, sold_hours / idle_hours) if idle_hours > 0 else None,
        idle_gpu_hours=idle_hours,
        sold_gpu_hours=sold_hours,
        revenue=revenue,
        revenue_per_idle_gpu_hour=(
            (revenue / Decimal(str(round(idle_hours, 6)))).quantize(Decimal("0.0001"))
            if idle_hours > 0
            else None
        ),
        orders=counts["all"],
        orders_met=counts["met"],
        orders_open=counts["open"],
        granted_quota=granted or 0,
        fleet_now=fleet_now,
    )
