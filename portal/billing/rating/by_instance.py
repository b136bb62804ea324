"""Usage per instance: one GROUP BY instance over `rated()`, or sums added up in memory."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING

from django.db import connection
from django.db.models import (
    Q,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from portal.billing.models import UsageKind
from portal.billing.money import SECONDS_PER_HOUR, cents
from portal.billing.rating.intervals import EXACT, exact_amount, of_organization, rated
from portal.catalog.models import InstanceType, Region
from portal.instances.models import Instance
from portal.web.sql import column

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class InstanceUsage:
    instance_id: int
    name: str
    state: str
    instance_type_name: str
    region_code: str
    preemptible: bool
    running_seconds: int
    stopped_seconds: int
    amount: Decimal

    @property
    def running_hours(self) -> Decimal:
        return Decimal(self.running_seconds) / SECONDS_PER_HOUR

    @property
    def stopped_hours(self) -> Decimal:
        return Decimal(self.stopped_seconds) / SECONDS_PER_HOUR


# The raw sums of one instance over a period (or a part of one), addable across parts:
# (instance id, running seconds, stopped seconds, exact Σ seconds × unit price). Plain tuples:
# a month of a large organization has a thousand of them, kept in the cache.
InstanceSums = tuple[int, int, int, Decimal]


def instance_sums(
    *, organization_id: int, start: datetime, end: datetime, now: datetime, where: Q | None = None
) -> list[InstanceSums]:
    """One GROUP BY instance over the period's rated intervals (narrowed by `where`)."""
    return list(
        rated(of_organization(organization_id, where), start=start, end=end, now=now)
        .values("instance_id")
        .annotate(
            running=Coalesce(Sum("seconds", filter=~Q(kind=UsageKind.STOPPED)), 0),
            stopped=Coalesce(Sum("seconds", filter=Q(kind=UsageKind.STOPPED)), 0),
            price_seconds_sum=Coalesce(Sum("price_seconds"), Value(Decimal(0)), output_field=EXACT),
        )
        .order_by()
        .values_list("instance_id", "running", "stopped", "price_seconds_sum")
    )


def instance_totals(sums: Iterable[InstanceSums]) -> dict[int, list]:
    """Sums of one scan or several parts added up per instance: instance id -> [running
    seconds, stopped seconds, exact Σ seconds × unit price]."""
    added: dict[int, list] = {}
    for instance_id, running, stopped, price_seconds in sums:
        found = added.get(instance_id)
        if found is None:
            added[instance_id] = [int(running), int(stopped), price_seconds]
        else:
            found[0] += int(running)
            found[1] += int(stopped)
            found[2] += price_seconds
    return added


def per_instance_of(
    sums: Iterable[InstanceSums], *, limit: int | None = None
) -> tuple[list[InstanceUsage], int]:
    """Usage of each instance from its sums (of one scan or several parts, added up), most
    expensive first (then by name), and how many instances there are in all.

    With `limit`, only the first `limit` are described (names, states and types: one query);
    the ranking stays exact: instances tied with the last one by amount are read too and
    ordered by name before the cut.
    """
    return per_instance_ranked(instance_totals(sums), limit=limit)


def per_instance_ranked(
    added: dict[int, list], *, limit: int | None = None
) -> tuple[list[InstanceUsage], int]:
    """`per_instance_of` from sums already added up per instance (`instance_totals`)."""
    wanted = list(added)
    if limit is not None and len(added) > limit:
        ranked = heapq.nlargest(limit, added, key=lambda instance_id: added[instance_id][2])
        wanted = ranked
        if wanted:
            last = added[wanted[-1]][2]
            chosen = set(wanted)
            wanted += [i for i, sums in added.items() if sums[2] == last and i not in chosen]
    described = _described(wanted)
    # Ranked before any is made: only the first `limit` are described as InstanceUsage (the
    # tied ones read above may be many). The sort is stable: equal keys keep `wanted`'s order.
    shown = [instance_id for instance_id in wanted if instance_id in described]
    shown.sort(key=lambda instance_id: (-added[instance_id][2], described[instance_id][1]))
    usages = []
    for instance_id in shown if limit is None else shown[:limit]:
        _, name, state, preemptible, type_name, region_code = described[instance_id]
        running, stopped, price_seconds = added[instance_id]
        usages.append(
            InstanceUsage(
                instance_id=instance_id,
                name=name,
                state=state,
                instance_type_name=type_name,
                region_code=region_code,
                preemptible=bool(preemptible),  # SQLite's 0 or 1
                running_seconds=running,
                stopped_seconds=stopped,
                amount=cents(exact_amount(price_seconds)),
            )
        )
    return usages, len(added)


@cache
def _described_sql() -> str:
    """The SQL of `_described`, from the models' tables and columns, up to its IN list."""
    quote = connection.ops.quote_name
    meta, types, regions = Instance._meta, InstanceType._meta, Region._meta

    fields = ", ".join(f"i.{column(meta, name)}" for name in ("id", "name", "state", "preemptible"))
    return (
        f"SELECT {fields}, t.{column(types, 'name')}, r.{column(regions, 'code')}"  # noqa: S608
        f" FROM {quote(meta.db_table)} i"
        f" JOIN {quote(types.db_table)} t"
        f" ON t.{quote(types.pk.column)} = i.{column(meta, 'instance_type')}"
        f" JOIN {quote(regions.db_table)} r"
        f" ON r.{quote(regions.pk.column)} = i.{column(meta, 'region')}"
        f" WHERE i.{quote(meta.pk.column)} IN "
    )


def _described(ids: list[int]) -> dict[int, tuple]:
    """Instance id -> (id, name, state, preemptible, type's name, region's code) of these
    instances, in one plain SQL statement (the ORM's `values_list` over two joins took ~0.7 ms
    to build, for a few rows); tests compare the rankings with a database's GROUP BY."""
    if not ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_described_sql() + f"({', '.join(['%s'] * len(ids))})", ids)
        return {row[0]: row for row in cursor.fetchall()}


def per_instance(
    *, organization_id: int, start: datetime, end: datetime, now: datetime
) -> list[InstanceUsage]:
    """Usage of each instance in [start, end), most expensive first."""
    usages, _ = per_instance_of(
        instance_sums(organization_id=organization_id, start=start, end=end, now=now)
    )
    return usages
