"""Spot prices sealed into usage.

A preemptible interval is rated at the spot prices in force during each of its seconds. Read
from the price history, that is two index lookups per interval, and they keep PostgreSQL's
rating query to one process: a month with prices moving every five minutes rated several
times slower than at catalog prices. But a closed interval's spot sum never changes unless
the history before its end does, so metering seals it into the interval when it closes
(`UsageInterval.sealed_price_seconds`, one UPDATE with the same SQL rating used), and rating
adds a column (`rating.rated`; it still looks up what is open or clipped).

The history and the seals are kept in step by the lock of `portal.market.locks`: a sealer
holds it shared before it touches usage, a writer of the history holds it exclusively and
re-seals what its change reaches (`spot_history_rewritten`, received in
`portal.billing.receivers`) before it commits.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any, cast

from django.db import connection
from django.db.models import F, QuerySet
from django.db.models.sql import UpdateQuery

from portal.billing.models import UsageInterval, UsageKind
from portal.billing.periods import midnight
from portal.billing.rating import sealed_price_seconds_whole
from portal.billing.usage import usage_changed
from portal.web.sql import Among, stand_in


def spot_seal(intervals: QuerySet[UsageInterval]) -> int:
    """Seal the spot sums of the closed preemptible intervals among `intervals`; how many.
    The caller holds `spot_history_read_lock` (or the write lock) of their types."""
    return intervals.filter(kind=UsageKind.PREEMPTIBLE, end__isnull=False).update(
        sealed_price_seconds=sealed_price_seconds_whole()
    )


def spot_seal_ids(ids: list[int]) -> int:
    """`spot_seal` of the intervals `ids` (the ones metering just closed): the same UPDATE,
    built once per process (the ORM took about as long to build it as PostgreSQL to run it,
    at every preemptible machine's end)."""
    sql, params, slot = _seal_ids_sql()
    params = list(params)
    params[slot] = list(ids)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


_STAND_IN = stand_in(list, 0)  # no interval's id: marks the ids' parameter while building


@cache
def _seal_ids_sql() -> tuple[str, list[Any], int]:
    intervals = UsageInterval.objects.filter(
        Among(F("pk"), _STAND_IN), kind=UsageKind.PREEMPTIBLE, end__isnull=False
    )
    query = cast(UpdateQuery, intervals.query.chain(UpdateQuery))
    query.add_update_values({"sealed_price_seconds": sealed_price_seconds_whole()})
    sql, params = query.get_compiler(connection.alias).as_sql()
    return sql, list(params), list(params).index(_STAND_IN)


def spot_reseal(*, region_id: int, instance_type_id: int, since: datetime) -> int:
    """The offer's history changed from `since` on: seal again its closed preemptible usage
    that ends after it, and retire the kept sums of the organizations that own it."""
    reaching = UsageInterval.objects.filter(
        region_id=region_id,
        instance_type_id=instance_type_id,
        kind=UsageKind.PREEMPTIBLE,
        # A closed interval never crosses a UTC midnight: one ending after `since` starts
        # no earlier than the midnight before it (the start index bounds the search).
        start__gte=midnight(since),
        end__gt=since,
    )
    organizations = set(reaching.values_list("organization_id", flat=True).distinct())
    if not organizations:
        return 0
    for organization_id in organizations:
        usage_changed(organization_id, sealed=True)
    return spot_seal(reaching)
