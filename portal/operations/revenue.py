"""Usage revenue for the operator's pages: billing's `rated()` intervals summed per unit price.

Σ seconds × price over thousands of intervals multiplies a NUMERIC on every row; summed per
unit price (whole seconds, a BIGINT) and multiplied once per price, the exact total is the same
(the sum of what is rated apart from its unit price, preemptible usage at spot prices, is added
as it is). The database then returns a row per price, or the top spenders, instead of one
NUMERIC product per interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Q, QuerySet, Sum

from portal.orgs.models import Organization


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


@dataclass(frozen=True)
class Spender:
    organization_id: int
    name: str
    slug: str
    price_seconds: Decimal


def top_spenders(rated_intervals: QuerySet, *, limit: int) -> list[Spender]:
    """The organizations of the highest Σ `price_seconds` of the intervals (from `rated()`),
    highest first (ties by id), with their names: one query, the per-price sums of each
    organization added up by the database around billing's query."""
    per_price = (
        rated_intervals.values("organization_id", "unit_price")
        .annotate(seconds=Sum("plain_seconds"), apart=Sum("apart_price_seconds"))
        .order_by()
    )
    try:
        inner, params = per_price.query.sql_with_params()
    except EmptyResultSet:  # rated() of a period not begun yet: no interval
        return []
    organizations = Organization._meta.db_table
    sql = (
        "SELECT g.organization_id, o.name, o.slug, "  # noqa: S608 - our table, Django's SQL
        "SUM(CAST(g.seconds AS NUMERIC) * g.unit_price + COALESCE(g.apart, 0)) AS spend "
        f"FROM ({inner}) g JOIN {organizations} o ON o.id = g.organization_id "
        "GROUP BY g.organization_id, o.name, o.slug ORDER BY spend DESC, g.organization_id "
        "LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        return [Spender(*row) for row in cursor.fetchall()]


def _exact(row: dict[str, Any], name: str) -> Decimal:
    seconds, apart = row[f"{name}_seconds"], row[f"{name}_apart"]
    return Decimal(seconds or 0) * row["unit_price"] + (apart or Decimal(0))
