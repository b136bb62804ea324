"""Indexes for the operator's pages at fleet scale (issue 21): the admin list filtered by state
and region, the overview's recent failures and GPUs sold per place.

Built with CREATE INDEX CONCURRENTLY on PostgreSQL (no lock that blocks writes to the
instances while a 100,000-row table is indexed), so this migration is not atomic; a build
interrupted midway leaves an INVALID index, which running the migration again drops and
rebuilds. SQLite (`make run`) builds them as usual.
"""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class _PlainOffPostgres:
    """A concurrent index operation that is its plain counterpart (`plain`) on any database
    but PostgreSQL. Also used by later migrations (0015, 0016)."""

    plain: type[migrations.AddIndex] | type[migrations.RemoveIndex]

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return self.plain.database_forwards(
                self, app_label, schema_editor, from_state, to_state
            )
        return super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return self.plain.database_backwards(
                self, app_label, schema_editor, from_state, to_state
            )
        return super().database_backwards(app_label, schema_editor, from_state, to_state)


class AddIndexConcurrentlyOnPostgres(_PlainOffPostgres, AddIndexConcurrently):
    plain = migrations.AddIndex

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            # An earlier interrupted build leaves an invalid index of that name behind.
            schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{self.index.name}"')
        return super().database_forwards(app_label, schema_editor, from_state, to_state)


class RemoveIndexConcurrentlyOnPostgres(_PlainOffPostgres, RemoveIndexConcurrently):
    plain = migrations.RemoveIndex


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("instances", "0012_instance_stop_notice")]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="instance",
            index=models.Index(
                fields=["state", "region", "-created_at", "-id"], name="instance_state_region"
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="instance",
            index=models.Index(
                fields=["state", "-state_changed_at"], name="instance_state_changed"
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="instance",
            index=models.Index(
                fields=["region", "instance_type", "preemptible"],
                include=["gpus"],
                condition=~models.Q(state__in=["terminated", "failed", "interrupted"]),
                name="instance_live_place",
            ),
        ),
    ]
