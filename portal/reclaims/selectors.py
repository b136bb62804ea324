"""Reads for reclaims: who the policy would take, and in which order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from django.db.models import BooleanField, Case, Q, QuerySet, Sum, Value, When

from portal.catalog.models import GpuModel, Region
from portal.catalog.selectors import prices_in_force
from portal.instances.models import Instance, State
from portal.reclaims.models import Order, OrderState, ReclaimOrder, ReclaimPolicy, ReclaimVictim
from portal.web.sql import ReadBuiltOnce

# States in which an instance's machine holds its GPUs (a stopped one holds none; a pending one
# has no machine yet; a stopping or terminating one gives them back anyway).
HOLDING_STATES = [State.PROVISIONING, State.RUNNING, State.STARTING, State.REBOOTING]


@dataclass(frozen=True)
class Candidate:
    instance: Instance
    gpus: int
    # Its max price (bid), else the catalog's preemptible price in force.
    price: Decimal


@dataclass(frozen=True)
class Ranked:
    """A candidate as the risk check weighs it: which instance and its GPUs, no more."""

    pk: int
    gpus: int


class _HasGpus(Protocol):
    @property
    def gpus(self) -> int: ...


_C = TypeVar("_C", bound=_HasGpus)


# Preemptible only: on-demand machines are never reclaimed, and a preemptible launch never
# draws on a reservation, so reserved capacity is spared by the same filter.
ELIGIBLE = Q(preemptible=True, state__in=HOLDING_STATES, reclaim_at__isnull=True) & ~Q(
    backend_id=""
)


def _eligible(queryset):
    return queryset.filter(ELIGIBLE)


def _policy_key(policy: ReclaimPolicy, *, price: Decimal, launched: datetime, pk: int) -> tuple:
    """The policy's order: newest first, or cheapest (bid or catalog price) first, then newest."""
    if policy.order == Order.NEWEST:
        return (-launched.timestamp(), -pk)
    return (price, -launched.timestamp(), -pk)


def _price(max_price: Decimal | None, instance_type_id: int, prices: dict) -> Decimal:
    """Its max price (bid), else the catalog's preemptible price in force."""
    if max_price is not None:
        return max_price
    in_force = prices.get(instance_type_id)
    return in_force.preemptible_hourly if in_force is not None else Decimal("0")


def _candidates(queryset, policy: ReclaimPolicy) -> list[Candidate]:
    instances = list(_eligible(queryset).select_related("instance_type", "organization", "region"))
    # The catalog's price stands in only for an instance without a bid (the victim keeps it).
    prices = prices_in_force(
        instance_types={i.instance_type_id for i in instances if i.max_price_per_hour is None}
    )
    candidates = [
        Candidate(
            instance=instance,
            gpus=instance.gpus,
            price=_price(instance.max_price_per_hour, instance.instance_type_id, prices),
        )
        for instance in instances
    ]
    candidates.sort(
        key=lambda c: _policy_key(
            policy,
            price=c.price,
            launched=c.instance.launched_at or c.instance.created_at,
            pk=c.instance.pk,
        )
    )
    return candidates


def reclaim_candidates_for_place(
    *, region: Region, gpu_model: GpuModel, policy: ReclaimPolicy
) -> list[Candidate]:
    """Every instance the policy may take in the place, in the policy's order."""
    return _candidates(
        Instance.objects.filter(region=region, instance_type__gpu_model=gpu_model), policy
    )


def reclaim_ranked_by_place(
    places: list[tuple[str, str]], *, policy: ReclaimPolicy
) -> dict[tuple[str, str], list[Ranked]]:
    """Every instance the policy may take in each place (region code, GPU model code), in the
    policy's order, as ids and GPUs: two queries however many places, and no model objects
    (a full fleet has hundreds of candidates; the risk check runs every 30 s)."""
    if not places:
        return {}
    where = Q()
    for region_code, model_code in places:
        where |= Q(region__code=region_code, instance_type__gpu_model__code=model_code)
    rows = list(
        _eligible(Instance.objects.filter(where)).values_list(
            *("pk", "gpus", "max_price_per_hour", "launched_at", "created_at"),
            *("instance_type_id", "region__code", "instance_type__gpu_model__code"),
        )
    )
    # Only the order needs a price here: the catalog's, for an instance without a bid.
    prices = (
        prices_in_force(instance_types={row[5] for row in rows if row[2] is None})
        if policy.order != Order.NEWEST
        else {}
    )
    rows.sort(
        key=lambda r: _policy_key(
            policy, price=_price(r[2], r[5], prices), launched=r[3] or r[4], pk=r[0]
        )
    )
    by_place: dict[tuple[str, str], list[Ranked]] = {place: [] for place in places}
    for pk, gpus, *_rest, region_code, model_code in rows:
        by_place.setdefault((region_code, model_code), []).append(Ranked(pk=pk, gpus=gpus))
    return by_place


@dataclass(frozen=True)
class Warned:
    """An instance under a reclaim risk warning: its GPUs, and whether the policy may still
    take it (else its warning is stale)."""

    pk: int
    gpus: int
    eligible: bool


def _warned() -> QuerySet[Any, Any]:
    return (
        Instance.objects.filter(reclaim_risk_at__isnull=False)
        .annotate(
            eligible=Case(
                When(ELIGIBLE, then=Value(True)), default=Value(False), output_field=BooleanField()
            ),
        )
        .values_list("pk", "gpus", "region__code", "instance_type__gpu_model__code", "eligible")
        .order_by()
    )


_WARNED = ReadBuiltOnce(_warned)  # after every capacity report


def warned_by_place() -> dict[tuple[str, str], list[Warned]]:
    """Every instance under a reclaim risk warning, per place (region code, GPU model code):
    one query."""
    by_place: dict[tuple[str, str], list[Warned]] = {}
    for pk, gpus, region_code, model_code, eligible in _WARNED.rows():
        by_place.setdefault((region_code, model_code), []).append(
            Warned(pk=pk, gpus=gpus, eligible=bool(eligible))
        )
    return by_place


def reclaim_candidates_for_ids(ids: list[int], *, policy: ReclaimPolicy) -> list[Candidate]:
    return _candidates(Instance.objects.filter(pk__in=ids), policy)


def reclaim_choose(*, candidates: list[_C], gpus: int) -> list[_C]:
    """Whole machines in the policy's order until `gpus` GPUs are covered."""
    chosen: list[_C] = []
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
