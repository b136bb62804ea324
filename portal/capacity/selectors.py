"""The fleet per region and GPU model, as the backend last reported it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from portal.capacity.snapshot import CapacitySnapshot, capacity_snapshot, max_age
from portal.catalog.models import GpuModel, InstanceType, Region

Place = tuple[str, str]  # (region code, GPU model code)


@dataclass(frozen=True)
class Fleet:
    """GPUs per (region, GPU model) from the capacity snapshot; empty without a snapshot."""

    taken_at: datetime | None
    total: dict[Place, int]
    free: dict[Place, int]


def gpu_models(snapshot: CapacitySnapshot) -> dict[str, str]:
    """Instance type code -> GPU model code of the snapshot's types: as the snapshot has them,
    else (a type the catalog did not have when it was stored) from the catalog, one query."""
    known = snapshot.gpu_models
    if known is not None and all(itype in known for _region, itype in snapshot.entries):
        return known
    return dict(InstanceType.objects.order_by().values_list("code", "gpu_model__code"))


def fleet() -> Fleet:
    """The fleet as the backend last reported it, from the snapshot alone."""
    snapshot = capacity_snapshot()
    if snapshot is None:
        return Fleet(taken_at=None, total={}, free={})
    model_of = gpu_models(snapshot)
    total: dict[Place, int] = {}
    free: dict[Place, int] = {}
    for (region, itype), (_instances, free_gpus, total_gpus) in snapshot.entries.items():
        gpu_model = model_of.get(itype)
        if gpu_model is None:
            continue
        place = (region, gpu_model)
        # Every instance type of a model shares the model's nodes: the same numbers.
        total[place] = max(total.get(place, 0), total_gpus)
        free[place] = min(free.get(place, free_gpus), free_gpus)
    return Fleet(taken_at=snapshot.taken_at, total=total, free=free)


def fleet_free_gpus(*, region: Region, gpu_model: GpuModel) -> int | None:
    """Free GPUs of the model in the region as the backend last reported (None: unknown or
    stale). Reserved GPUs not in use are not free: the backend holds them."""
    current = fleet()
    if current.taken_at is None:
        return None
    if (timezone.now() - current.taken_at).total_seconds() > max_age():
        return None
    return current.free.get((region.code, gpu_model.code))


def fleet_free_text(*, region: Region, gpu_model: GpuModel) -> str:
    """For staff next to a quota request: free and total GPUs, and how old the report is."""
    current = fleet()
    place = (region.code, gpu_model.code)
    if current.taken_at is None or place not in current.total:
        return "Unknown: the provisioning backend has not reported this capacity yet."
    age = int((timezone.now() - current.taken_at).total_seconds())
    return (
        f"{current.free[place]} of {current.total[place]} {gpu_model.name} GPUs free in "
        f"{region.code} (backend report {age} s ago; reserved GPUs not in use are not free)."
    )


@dataclass(frozen=True)
class PlaceDemand:
    """One region and GPU model as the backend last reported it, with the operator's work."""

    region: str
    gpu_model: str
    fleet: int
    free: int
    internal: int
    customer: int
    shortfall: int
    forecast: int | None


def demand_by_place(snapshot: CapacitySnapshot | None = None) -> dict[Place, PlaceDemand]:
    """Per (region code, GPU model code): fleet, free, internal, customer-held, shortfall and
    the backend's forecast of internal demand, from the snapshot (the latest by default).
    Every instance type of a model reports the same numbers; no query."""
    snapshot = snapshot if snapshot is not None else capacity_snapshot()
    if snapshot is None:
        return {}
    model_of = gpu_models(snapshot)
    places: dict[Place, PlaceDemand] = {}
    for (region, itype), (_instances, free_gpus, total_gpus) in snapshot.entries.items():
        gpu_model = model_of.get(itype)
        if gpu_model is None or (region, gpu_model) in places:
            continue
        internal, customer, shortfall, forecast = snapshot.demand.get(
            (region, itype), (0, 0, 0, None)
        )
        places[(region, gpu_model)] = PlaceDemand(
            region=region,
            gpu_model=gpu_model,
            fleet=total_gpus,
            free=free_gpus,
            internal=internal,
            customer=customer,
            shortfall=shortfall,
            forecast=forecast,
        )
    return places
