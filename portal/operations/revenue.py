"""Usage revenue for the operator's pages: billing's `rated()` intervals summed per unit price.

Σ seconds × price over thousands of intervals multiplies a NUMERIC on every row; summed per
unit price (whole seconds, a BIGINT) and multiplied once per price, the exact total is the same
(the sum of what is rated apart from its unit price, preemptible usage at spot prices, is added
as it is). The database then returns a row per price (and per organization, for the top
spenders) instead of one NUMERIC product per interval.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db.models import Q, QuerySet, Sum


def price_seconds(rated_intervals: QuerySet, **parts: Q) -> dict[str, Decimal]:
    """Σ `price_seconds` of the intervals (from `rated()`) of each named part (a condition on
    them): one query, a row per unit price."""
    sums: dict[str, Any] = {}
    for name, condition in parts.items():
        sums[f"{name}_seconds"] = Sum("plain_seconds", filter=condition)
        sums[f"{name}_apart"] = Sum("apart_price_seconds", filter=condition)
    totals = dict.fromkeys(parts, Decimal(0))
    for row in rated_intervals.values("unit_price").annotate(**sums).order_by():
        for name in parts:
            totals[name] += _exact(row, name)
    return totals


def price_seconds_by_organization(rated_intervals: QuerySet) -> dict[int, Decimal]:
    """Σ `price_seconds` per organization of the intervals (from `rated()`): one query, a row
    per organization and unit price."""
    totals: dict[int, Decimal] = defaultdict(Decimal)
    rows = (
        rated_intervals.values("organization_id", "unit_price")
        .annotate(all_seconds=Sum("plain_seconds"), all_apart=Sum("apart_price_seconds"))
        .order_by()
    )
    for row in rows:
        totals[row["organization_id"]] += _exact(row, "all")
    return dict(totals)


def _exact(row: dict[str, Any], name: str) -> Decimal:
    seconds, apart = row[f"{name}_seconds"], row[f"{name}_apart"]
    return Decimal(seconds or 0) * row["unit_price"] + (apart or Decimal(0))
