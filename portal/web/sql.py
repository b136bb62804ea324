"""Names for SQL written by hand (statements built once per process from the models): a
model's table and a field's column, quoted for the database; `ReadBuiltOnce`, a hot read
the ORM builds once per process; and `Among`, a filter on a list of ids given as one
parameter, so that the query's text does not depend on how many there are."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Field, Lookup, Model, QuerySet
from django.db.models.options import Options
from django.db.models.query import (  # type: ignore[attr-defined]  # not in django-stubs
    ModelIterable,
    get_related_populators,
)


def _meta(model: type[Model] | Options) -> Options:
    return model if isinstance(model, Options) else model._meta


def table(model: type[Model] | Options) -> str:
    """The model's table, quoted."""
    return connection.ops.quote_name(_meta(model).db_table)


def column(model: type[Model] | Options, name: str) -> str:
    """The column of the model's field `name`, quoted."""
    field = _meta(model).get_field(name)
    assert isinstance(field, Field) and field.column
    return connection.ops.quote_name(field.column)


class Among(Lookup):
    """`filter(Among(F("instance_id"), ids))`: the field's value is one of `ids` (a list of
    ints), sent as one parameter (an array; JSON text on SQLite). Unlike `__in`, the query's
    text is the same for any number of ids, so it can be a `ReadBuiltOnce` (placeholder
    `ids=list`) and PostgreSQL prepares it once."""

    lookup_name = "among"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, params = self.process_lhs(compiler, connection)
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s)", [*params, _adapted(self.rhs)]
        among = f"{lhs} IN (SELECT value FROM json_each(%s))"  # noqa: S608 - the ORM's column
        return among, [*params, _adapted(self.rhs)]


class ReadBuiltOnce:
    """A hot read of a fixed shape (a `values_list` query, or a model's rows) that the ORM
    builds once per process: its SQL and parameters are kept and sent as they are, each time.
    Django takes about as long to build a small query as PostgreSQL takes to answer it, and a
    read done at every launch, capacity report or state change pays that every time.

    `build(**placeholders)` makes the queryset; each placeholder names the type (int, str,
    datetime, or list: ids for `Among`) of a parameter given at each read
    (`rows(name=value)`), and is built with a stand-in value of that type that no other
    parameter of the query equals. The rows are the database's values, in the order of the
    `values_list` (checked when built: annotations last, as Django selects them); `objects()`
    gives a model query's rows as instances, as its queryset would: with the rows of its
    `select_related` attached and its annotations set, by Django's own populators."""

    def __init__(self, build: Callable[..., QuerySet[Any, Any]], **placeholders: type) -> None:
        self._build = build
        self._placeholders = {
            name: stand_in(kind, index) for index, (name, kind) in enumerate(placeholders.items())
        }
        self._built: _Built | None = None

    def _sql(self) -> _Built:
        if self._built is None:
            queryset = self._build(**self._placeholders)
            query = queryset.query
            selected = [*query.extra_select, *query.values_select, *query.annotation_select]
            fields = list(getattr(queryset, "_fields", None) or ())
            if fields and fields != selected:
                raise ValueError(f"values_list({fields}) is selected as {selected}: reorder it")
            compiler = query.get_compiler(using=queryset.db)
            sql, params = compiler.as_sql()
            instances = (
                _Instances.of(compiler, queryset.db)
                if queryset._iterable_class is ModelIterable
                else None
            )
            # The database's values as the ORM would give them (SQLite's dates are text).
            converters = compiler.get_converters(
                [s[0] for s in compiler.select[: compiler.col_count]]
            )
            slots = [
                (index, name)
                for index, value in enumerate(params)
                for name, placeholder in self._placeholders.items()
                # A big integer column's value comes wrapped (psycopg's Int8, an int).
                if isinstance(value, type(_adapted(placeholder))) and value == _adapted(placeholder)
            ]
            if sorted({name for _index, name in slots}) != sorted(self._placeholders):
                raise ValueError("a placeholder is not among the query's parameters")
            self._built = _Built(sql, list(params), slots, compiler, converters, instances)
        return self._built

    def rows(self, **values: Any) -> list[tuple[Any, ...]]:
        built = self._sql()
        params = built.params
        if built.slots:
            params = list(params)
            for index, name in built.slots:
                params[index] = _adapted(values[name], like=params[index])
        with connection.cursor() as cursor:
            cursor.execute(built.sql, params)
            rows = cursor.fetchall()
        if built.converters:
            return [tuple(row) for row in built.compiler.apply_converters(rows, built.converters)]
        return rows

    def objects(self, **values: Any) -> list[Any]:
        """The rows as instances of the model (a read of model rows, not a `values_list`)."""
        instances = self._sql().instances
        if instances is None:
            raise ValueError("objects() reads model rows: this read is a values_list")
        return [instances.make(row) for row in self.rows(**values)]

    def first(self, **values: Any) -> Any | None:
        """The first instance `objects()` gives, or None (as a queryset's `first()`, given
        the read's own ordering)."""
        found = self.objects(**values)
        return found[0] if found else None

    def get(self, **values: Any) -> Any:
        """The one instance the read finds (a read of one row by its key); the model's
        DoesNotExist if none, as a queryset's `get()`."""
        found = self.objects(**values)
        if not found:
            instances = self._sql().instances
            assert instances is not None  # objects() refuses a values_list read
            name = instances.model._meta.object_name
            raise instances.model.DoesNotExist(f"{name} matching query does not exist.")
        return found[0]


def stand_in(kind: type, index: int) -> Any:
    """A value of `kind` that stands for a placeholder while the query is built: one that no
    real parameter takes (an id near the top of a 32-bit integer, which any integer field but
    a small one holds: for a value out of a field's range Django writes no SQL but an empty
    result; a moment in 1901; a text with a NUL)."""
    if kind is int:
        return 2_147_483_000 - index
    if kind is str:
        return f"\x00placeholder-{index}"
    if kind is datetime.datetime:
        return datetime.datetime(1901, 2, 3, 4, 5, 6, index + 1, tzinfo=datetime.UTC)
    if kind is list:
        return [-987_654_321 - index]
    raise TypeError(f"a placeholder is an int, a str, a datetime or a list, not {kind!r}")


def _adapted(value: Any, like: Any = None) -> Any:
    """A value as the ORM passes it to the database (SQLite takes datetimes as text); a list
    of ids as `Among` passes it; an int wrapped as the ORM wrapped the stand-in (`like`)."""
    if type(like) is not int and isinstance(like, int) and isinstance(value, int):
        return type(like)(value)
    if isinstance(value, datetime.datetime):
        return connection.ops.adapt_datetimefield_value(value)
    if isinstance(value, list | tuple):
        ids = list(value)
        return ids if connection.vendor == "postgresql" else json.dumps(ids)
    return value


class _Instances(NamedTuple):
    """How a row of a model read becomes its instance, as Django's `ModelIterable` makes it
    from the same compiled query: the model's columns, then each `select_related` row
    (`RelatedPopulator`), then the annotations."""

    model: Any
    db: str
    start: int
    end: int
    attnames: list[str]
    populators: list[Any]
    annotations: dict[str, int]

    @classmethod
    def of(cls, compiler: Any, db: str) -> _Instances:
        klass_info, select = compiler.klass_info, compiler.select
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        return cls(
            model=klass_info["model"],
            db=db,
            start=start,
            end=end,
            attnames=[column[0].target.attname for column in select[start:end]],
            populators=get_related_populators(klass_info, select, db),
            annotations=dict(compiler.annotation_col_map or {}),
        )

    def make(self, row: tuple[Any, ...]) -> Any:
        instance = self.model.from_db(self.db, self.attnames, row[self.start : self.end])
        for populator in self.populators:
            populator.populate(row, instance)
        for name, index in self.annotations.items():
            setattr(instance, name, row[index])
        return instance


class _Built(NamedTuple):
    sql: str
    params: list[Any]
    slots: list[tuple[int, str]]
    compiler: Any  # the ORM's compiler of the query: its converters for the rows
    converters: dict[int, Any]
    instances: _Instances | None  # a read of model rows: how each row becomes its instance
