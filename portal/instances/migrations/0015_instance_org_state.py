"""The dashboard's fleet figures per organization and state, from the index alone (issue 21).

Built concurrently on PostgreSQL, as migration 0013's indexes are (see there)."""

from importlib import import_module

from django.db import migrations, models

AddIndexConcurrentlyOnPostgres = import_module(
    "portal.instances.migrations.0013_instance_fleet_scale_indexes"
).AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("instances", "0014_instance_log_context")]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="instance",
            index=models.Index(
                fields=["organization", "state"], include=["gpus"], name="instance_org_state"
            ),
        ),
    ]
