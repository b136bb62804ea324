"""How often preemptible instances of a type in a region were interrupted (reclaimed), over
the last 30 days, as customers plan with it (like AWS's Spot Instance Advisor).

The rate is interruptions per instance-day: the preemptible instances of the type and region
interrupted in the window, over the days those instances lived in the window (from launch to
their end, or now). Shown in buckets ("<5 %", "5–10 %", ...), with the median time an
interrupted instance ran before its reclaim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from portal.instances.models import Instance, State

WINDOW = timedelta(days=30)
BUCKETS = ((0.05, "<5 %"), (0.10, "5–10 %"), (0.15, "10–15 %"), (0.20, "15–20 %"))


@dataclass(frozen=True)
class Interruptions:
    instances: int
    interrupted: int
    instance_days: float
    median_run: timedelta | None

    @property
    def rate(self) -> float | None:
        return self.interrupted / self.instance_days if self.instance_days > 0 else None

    @property
    def bucket(self) -> str:
        rate = self.rate
        if rate is None:
            return "no data"
        for limit, label in BUCKETS:
            if rate < limit:
                return label
        return ">20 %"

    @property
    def median_run_text(self) -> str:
        if self.median_run is None:
            return "none reclaimed"
        hours = self.median_run.total_seconds() / 3600
        if hours >= 48:
            return f"{hours / 24:.0f} days"
        if hours >= 1:
            return f"{hours:.0f} h"
        return f"{max(1, round(hours * 60))} min"

    @property
    def summary(self) -> str:
        return (
            f"Interrupted {self.bucket} per day of running (last 30 days, {self.interrupted} of "
            f"{self.instances} preemptible instances); median run before a reclaim: "
            f"{self.median_run_text}."
        )


def interruption_rates(*, now: datetime | None = None) -> dict[tuple[int, int], Interruptions]:
    """Per (instance type id, region id) with preemptible instances in the window. 2 queries."""
    now = now or timezone.now()
    start = now - WINDOW
    lived = Instance.objects.filter(preemptible=True, launched_at__isnull=False).filter(
        Q(terminated_at__isnull=True) | Q(terminated_at__gte=start)
    )
    rows = (
        lived.values("instance_type_id", "region_id")
        .annotate(
            n=Count("pk"),
            interrupted=Count("pk", filter=Q(state=State.INTERRUPTED, terminated_at__gte=start)),
            lived=Sum(
                ExpressionWrapper(
                    Coalesce(F("terminated_at"), Value(now))
                    - Greatest(F("launched_at"), Value(start)),
                    output_field=DurationField(),
                )
            ),
        )
        .order_by()
    )
    runs: dict[tuple[int, int], list[float]] = {}  # seconds each ran before its reclaim
    for type_id, region_id, launched, ended in Instance.objects.filter(
        preemptible=True,
        state=State.INTERRUPTED,
        terminated_at__gte=start,
        launched_at__isnull=False,
    ).values_list("instance_type_id", "region_id", "launched_at", "terminated_at"):
        if ended is not None and launched is not None:
            runs.setdefault((type_id, region_id), []).append((ended - launched).total_seconds())
    result = {}
    for row in rows:
        key = (row["instance_type_id"], row["region_id"])
        lived_for = row["lived"] or timedelta(0)
        result[key] = Interruptions(
            instances=row["n"],
            interrupted=row["interrupted"],
            instance_days=max(0.0, lived_for.total_seconds() / 86400),
            median_run=timedelta(seconds=median(runs[key])) if runs.get(key) else None,
        )
    return result


def catalog_interruption_notes(type_ids: list[int], region_id: int | None) -> dict[int, str]:
    """For the catalog page (registered with portal.catalog.insights): per instance type, its
    preemptible interruption bucket in the region (or over every region) and the median run."""
    notes: dict[int, str] = {}
    per_type: dict[int, list[Interruptions]] = {}
    for (type_id, rid), one in interruption_rates().items():
        if type_id in type_ids and (region_id is None or rid == region_id):
            per_type.setdefault(type_id, []).append(one)
    for type_id, places in per_type.items():
        runs = [p.median_run for p in places if p.median_run is not None]
        combined = Interruptions(
            instances=sum(p.instances for p in places),
            interrupted=sum(p.interrupted for p in places),
            instance_days=sum(p.instance_days for p in places),
            median_run=sorted(runs)[len(runs) // 2] if runs else None,
        )
        notes[type_id] = (
            f"Interrupted {combined.bucket}/day (30 d); median run before a reclaim "
            f"{combined.median_run_text}."
        )
    return notes
