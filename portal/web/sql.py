"""Names for SQL written by hand (statements built once per process from the models): a
model's table and a field's column, quoted for the database."""

from __future__ import annotations

from django.db import connection
from django.db.models import Field, Model
from django.db.models.options import Options


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
