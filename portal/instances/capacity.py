"""The capacity snapshot: what the backend said was free, stored by a periodic task.

Web requests never call the backend; the launch page and the launch service read the snapshot
from the (shared) cache. Launches made since the snapshot are subtracted, so a burst of
launches between two refreshes does not count the same free slot twice. "Since" is by id: the
snapshot keeps the highest instance id it has seen, and the launches after it are a range of
the primary key, however many instances the fleet runs (every launch asks).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db.models import Count, Max
from django.utils import timezone

from portal.instances.conf import setting
from portal.instances.models import FINAL_STATES, Instance
from portal.provisioning import Capacity

CACHE_KEY = "instances:capacity-snapshot"


@dataclass(frozen=True)
class CapacitySnapshot:
    taken_at: datetime
    # (region code, instance type code) -> (free instances, free GPUs, total GPUs)
    entries: dict[tuple[str, str], tuple[int, int, int]]
    # The highest instance id when the snapshot was stored (None: a snapshot stored before
    # this field existed, still in the cache; launches are then found by time).
    last_instance_id: int | None = None

    @property
    def age(self) -> timedelta:
        return timezone.now() - self.taken_at

    @property
    def is_fresh(self) -> bool:
        return self.age.total_seconds() <= setting("INSTANCE_CAPACITY_MAX_AGE")


def capacity_snapshot_store(*, capacities: list[Capacity]) -> CapacitySnapshot:
    snapshot = CapacitySnapshot(
        taken_at=timezone.now(),
        entries={
            (c.region, c.instance_type): (c.free_instances, c.free_gpus, c.total_gpus)
            for c in capacities
        },
        last_instance_id=Instance.objects.aggregate(last=Max("pk"))["last"] or 0,
    )
    cache.set(CACHE_KEY, snapshot, timeout=None)
    return snapshot


def capacity_snapshot() -> CapacitySnapshot | None:
    return cache.get(CACHE_KEY)


def launches_since(snapshot: CapacitySnapshot) -> dict[tuple[str, str], int]:
    """Launches (all organizations) after the snapshot that still hold or will hold capacity.

    By id (a range of the primary key), not by `created_at`, which no index covers: that
    query walks every live instance of the fleet (the partial unique index on live names),
    3.5 ms a launch at 10,000 live instances against 1.4 ms by id.
    """
    if snapshot.last_instance_id is not None:
        after = Instance.objects.filter(pk__gt=snapshot.last_instance_id)
    else:
        after = Instance.objects.filter(created_at__gt=snapshot.taken_at)
    rows = (
        after.exclude(state__in=FINAL_STATES)
        .values("region__code", "instance_type__code")
        .annotate(n=Count("id"))
    )
    return {(r["region__code"], r["instance_type__code"]): r["n"] for r in rows}


@dataclass(frozen=True)
class FreeCapacity:
    """Free instances of one type in one region, or None where the snapshot says nothing."""

    snapshot: CapacitySnapshot | None
    free: dict[tuple[str, str], int]

    def get(self, region: str, instance_type: str) -> int | None:
        if self.snapshot is None or not self.snapshot.is_fresh:
            return None
        return self.free.get((region, instance_type))


def free_capacity() -> FreeCapacity:
    """Free instances per (region, type) now: the snapshot minus launches made since. 1 query."""
    snapshot = capacity_snapshot()
    if snapshot is None:
        return FreeCapacity(snapshot=None, free={})
    launched = launches_since(snapshot)
    return FreeCapacity(
        snapshot=snapshot,
        free={
            key: max(0, free - launched.get(key, 0))
            for key, (free, _gpus, _total) in snapshot.entries.items()
        },
    )
