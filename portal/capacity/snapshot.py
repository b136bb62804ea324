"""The capacity snapshot: what the backend last said it holds and has free, per region and
instance type, stored in the (shared) cache by a periodic task.

Web requests never call the backend; pages and services read the snapshot. Whoever stores it
may pass a `marker` (the instances app passes the highest instance id, so that launches made
since can be subtracted: see portal.instances.capacity).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from portal.capacity.signals import capacity_snapshot_stored
from portal.catalog.models import InstanceType
from portal.provisioning import Capacity

CACHE_KEY = "capacity:snapshot"
# A snapshot older than this is not trusted for refusing launches or approving quota.
DEFAULT_MAX_AGE = 300


@dataclass(frozen=True)
class CapacitySnapshot:
    taken_at: datetime
    # (region code, instance type code) -> (free instances, free GPUs, total GPUs)
    entries: dict[tuple[str, str], tuple[int, int, int]]
    # What the storer marked the snapshot with (the highest instance id at the time).
    last_instance_id: int | None = None
    # (region code, instance type code) -> (internal GPUs, customer-held GPUs, shortfall,
    # forecast internal GPUs or None): the operator's own work, per the model of the type.
    demand: dict[tuple[str, str], tuple[int, int, int, int | None]] = field(default_factory=dict)
    # Instance type code -> GPU model code, from the catalog when the snapshot was stored: the
    # readers after each report group by GPU model without a query each. None in a snapshot
    # stored before it was kept (readers then ask the catalog).
    gpu_models: dict[str, str] | None = None

    @property
    def age(self) -> timedelta:
        return timezone.now() - self.taken_at

    @property
    def is_fresh(self) -> bool:
        return self.age.total_seconds() <= max_age()


def max_age() -> float:
    return float(getattr(settings, "INSTANCE_CAPACITY_MAX_AGE", DEFAULT_MAX_AGE))


def snapshot_store(*, capacities: Iterable[Capacity], marker: int | None) -> CapacitySnapshot:
    capacities = list(capacities)
    snapshot = CapacitySnapshot(
        taken_at=timezone.now(),
        entries={
            (c.region, c.instance_type): (c.free_instances, c.free_gpus, c.total_gpus)
            for c in capacities
        },
        last_instance_id=marker,
        demand={
            (c.region, c.instance_type): (
                c.internal_gpus,
                c.customer_gpus,
                c.shortfall_gpus,
                c.internal_forecast_gpus,
            )
            for c in capacities
        },
        gpu_models=catalog_gpu_models(),
    )
    cache.set(CACHE_KEY, snapshot, timeout=None)
    transaction.on_commit(
        lambda: capacity_snapshot_stored.send(sender=CapacitySnapshot, snapshot=snapshot)
    )
    return snapshot


# Instance type code -> GPU model code, as the catalog has it: kept in the cache between
# reports (a report every 30 s read it each time), dropped whenever an instance type or GPU
# model is saved or deleted (portal.capacity.receivers), and read again at least hourly.
GPU_MODELS_KEY = "capacity:catalog-gpu-models"
GPU_MODELS_SECONDS = 3600


def catalog_gpu_models() -> dict[str, str]:
    known = cache.get(GPU_MODELS_KEY)
    if known is None:
        known = dict(InstanceType.objects.order_by().values_list("code", "gpu_model__code"))
        cache.set(GPU_MODELS_KEY, known, timeout=GPU_MODELS_SECONDS)
    return known


def catalog_gpu_models_changed() -> None:
    cache.delete(GPU_MODELS_KEY)


def capacity_snapshot() -> CapacitySnapshot | None:
    return cache.get(CACHE_KEY)
