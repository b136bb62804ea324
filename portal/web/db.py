"""The PostgreSQL cursor of every connection: server-side binding, with psycopg preparing a
query run often on a connection, except a search."""

from typing import Any

from django.db.backends.postgresql.base import (  # type: ignore[attr-defined]  # not in the stubs
    ServerBindingCursor,
)


class PreparingCursor(ServerBindingCursor):
    """Django's server-side binding cursor, whose queries psycopg prepares once run more than
    DATABASE_PREPARE_THRESHOLD times on a connection (PostgreSQL then plans them once), except
    a search (`LIKE`), planned for its pattern each time.

    After five runs of a prepared query PostgreSQL may keep one plan for any value, when its
    estimated cost is lower. For a pattern it cannot see it guesses that 0.5 % of rows match,
    which makes reading the whole table in page order and stopping at 50 rows look cheap: the
    admin's search by name at 100,000 instances, on that plan, took 308 ms against 2 ms on the
    pattern's own. Whether the estimate tips that way depends on the search's joins and
    filters; a search is not worth the risk of the planning it saves (~2 ms)."""

    def execute(
        self, query: Any, params: Any = None, *, prepare: bool | None = None, **kwargs: Any
    ) -> Any:
        if prepare is None and isinstance(query, str) and "LIKE " in query:
            prepare = False
        return super().execute(query, params, prepare=prepare, **kwargs)
