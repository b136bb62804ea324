"""An organization's instances newest first with the id as the tie-break (issue 21).

The list and the dashboard's recent rows order by (created_at, id) descending. With only
created_at in the index, instances created together (a cluster's 1,000 nodes) were all read
and sorted for a first page of five. Built, and the old index dropped, concurrently on
PostgreSQL, as migration 0013's indexes are (see there)."""

from importlib import import_module

from django.contrib.postgres.operations import RemoveIndexConcurrently
from django.db import migrations, models

AddIndexConcurrentlyOnPostgres = import_module(
    "portal.instances.migrations.0013_instance_fleet_scale_indexes"
).AddIndexConcurrentlyOnPostgres


class RemoveIndexConcurrentlyOnPostgres(RemoveIndexConcurrently):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return migrations.RemoveIndex.database_forwards(
                self, app_label, schema_editor, from_state, to_state
            )
        return super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return migrations.RemoveIndex.database_backwards(
                self, app_label, schema_editor, from_state, to_state
            )
        return super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("instances", "0015_instance_org_state")]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="instance",
            index=models.Index(
                fields=["organization", "-created_at", "-id"], name="instance_org_newest"
            ),
        ),
        RemoveIndexConcurrentlyOnPostgres(model_name="instance", name="instance_org_created"),
    ]
