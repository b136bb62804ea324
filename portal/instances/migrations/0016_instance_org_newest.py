"""An organization's instances newest first with the id as the tie-break (issue 21).

The list and the dashboard's recent rows order by (created_at, id) descending. With only
created_at in the index, instances created together (a cluster's 1,000 nodes) were all read
and sorted for a first page of five. Built, and the old index dropped, concurrently on
PostgreSQL, as migration 0013's indexes are (its operations, see there)."""

from importlib import import_module

from django.db import migrations, models

_operations = import_module("portal.instances.migrations.0013_instance_fleet_scale_indexes")
AddIndexConcurrentlyOnPostgres = _operations.AddIndexConcurrentlyOnPostgres
RemoveIndexConcurrentlyOnPostgres = _operations.RemoveIndexConcurrentlyOnPostgres


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
