"""The lock that keeps an offer's price history and the usage sealed from it in step.

Billing seals a closed preemptible interval's spot prices into the interval
(`portal.billing.sealing`): a copy of the history, read once. So that no seal reads a history
in the middle of a change, and no change misses a seal, both sides lock the instance type's
catalog row (one row for all its regions): a writer of the history FOR NO KEY UPDATE, held
until it commits and after it has re-sealed what it changed (`spot_history_rewritten`); a
sealer FOR SHARE, taken before it touches usage. Sealers do not wait for each other, and
neither blocks the foreign-key checks of rows that point at the type.
"""

from __future__ import annotations

from django.db import connection

from portal.catalog.models import InstanceType


def _lock(instance_type_id: int, mode: str) -> None:
    table = connection.ops.quote_name(InstanceType._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR {mode}", [instance_type_id])  # noqa: S608 - our table name


def spot_history_write_lock(instance_type_id: int) -> None:
    """Held (in a transaction) by whoever writes the type's spot price history."""
    _lock(instance_type_id, "NO KEY UPDATE")


def spot_history_read_lock(instance_type_id: int) -> None:
    """Held (in a transaction) by whoever seals usage from the type's spot price history."""
    _lock(instance_type_id, "SHARE")
