"""Reads for reclaims: who the policy would take, and in which order."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, Sum

from portal.catalog.models import GpuModel, Region
from portal.catalog.selectors import prices_in_force
from portal.instances.models import Instance, State
from portal.reclaims.models import Order, OrderState, ReclaimOrder, ReclaimPolicy, ReclaimVictim

# States in which an instance's machine holds its GPUs (a stopped one holds none; a pending one
# has no machine yet; a stopping or terminating one gives them back anyway).
HOLDING_STATES = [State.PROVISIONING, State.RUNNING, State.STARTING, State.REBOOTING]


@dataclass(frozen=True)
class Candidate:
    instance: Instance
    gpus: int
    # Its max price (bid), else the catalog's preemptible price in force.
    price: Decimal


def _candidates(
    queryset, policy: ReclaimPolicy, *, related: tuple[str, ...] = ()
) -> list[Candidate]:
    # Preemptible only: on-demand machines are never reclaimed, and a preemptible launch never
    # draws on a reservation, so reserved capacity is spared by the same filter.
    instances = list(
        queryset.filter(preemptible=True, state__in=HOLDING_STATES, reclaim_at__isnull=True)
        .exclude(backend_id="")
        .select_related("instance_type", "organization", "region", *related)
    )
    prices = prices_in_force(instance_types={i.instance_type_id for i in instances})
    candidates = []
    for instance in instances:
        price = instance.max_price_per_hour
        if price is None:
            in_force = prices.get(instance.instance_type_id)
            price = in_force.preemptible_hourly if in_force is not None else Decimal("0")
        candidates.append(Candidate(instance=instance, gpus=instance.gpus, price=price))

    def launched(c: Candidate) -> float:
        return (c.instance.launched_at or c.instance.created_at).timestamp()

    if policy.order == Order.NEWEST:
        candidates.sort(key=lambda c: (-launched(c), -c.instance.pk))
    else:
        candidates.sort(key=lambda c: (c.price, -launched(c), -c.instance.pk))
    return candidates


def reclaim_candidates_for_place(
    *, region: Region, gpu_model: GpuModel, policy: ReclaimPolicy
) -> list[Candidate]:
    """Every instance the policy may take in the place, in the policy's order."""
    return _candidates(
        Instance.objects.filter(region=region, instance_type__gpu_model=gpu_model), policy
    )


def reclaim_candidates_by_place(
    places: list[tuple[str, str]], *, policy: ReclaimPolicy
) -> dict[tuple[str, str], list[Candidate]]:
    """`reclaim_candidates_for_place` of several places (region code, GPU model code) at
    once: two queries, however many places."""
    if not places:
        return {}
    where = Q()
    for region_code, model_code in places:
        where |= Q(region__code=region_code, instance_type__gpu_model__code=model_code)
    by_place: dict[tuple[str, str], list[Candidate]] = {place: [] for place in places}
    candidates = _candidates(
        Instance.objects.filter(where), policy, related=("instance_type__gpu_model",)
    )
    for candidate in candidates:
        instance = candidate.instance
        place = (instance.region.code, instance.instance_type.gpu_model.code)
        by_place.setdefault(place, []).append(candidate)
    return by_place


def reclaim_candidates_for_ids(ids: list[int], *, policy: ReclaimPolicy) -> list[Candidate]:
    return _candidates(Instance.objects.filter(pk__in=ids), policy)


def reclaim_choose(*, candidates: list[Candidate], gpus: int) -> list[Candidate]:
    """Whole machines in the policy's order until `gpus` GPUs are covered."""
    chosen: list[Candidate] = []
    covered = 0
    for candidate in candidates:
        if covered >= gpus:
            break
        chosen.append(candidate)
        covered += candidate.gpus
    return chosen


def gpus_under_notice(*, region: Region, gpu_model: GpuModel) -> int:
    """GPUs of open orders' victims that have not ended yet: on their way back."""
    return (
        ReclaimVictim.objects.filter(
            order__state=OrderState.OPEN,
            order__region=region,
            order__gpu_model=gpu_model,
            ended_at__isnull=True,
        ).aggregate(n=Sum("gpus"))["n"]
        or 0
    )


def gpus_under_notice_by_place() -> dict[tuple[str, str], int]:
    """`gpus_under_notice` of every place at once: (region code, GPU model code) -> GPUs."""
    rows = (
        ReclaimVictim.objects.filter(order__state=OrderState.OPEN, ended_at__isnull=True)
        .values("order__region__code", "order__gpu_model__code")
        .annotate(n=Sum("gpus"))
        .order_by()
    )
    return {(r["order__region__code"], r["order__gpu_model__code"]): r["n"] or 0 for r in rows}


def reclaim_order_list_open() -> list[ReclaimOrder]:
    return list(
        ReclaimOrder.objects.filter(state=OrderState.OPEN).select_related("region", "gpu_model")
    )
