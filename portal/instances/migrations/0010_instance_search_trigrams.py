"""Trigram indexes for the admin's instance search (PostgreSQL only).

The admin searches a fleet of 100,000 instances by any part of a name, backend id, request id
or IP address (`UPPER(column::text) LIKE UPPER('%term%')`, Django's icontains); without these
each search read every row. SQLite (`make run`) has no pg_trgm and keeps its full scan.
pg_trgm is a trusted extension: the database's owner may create it.
"""

from django.db import migrations

SEARCHED = {
    "instance_name_trgm": 'UPPER("name"::text)',
    "instance_backend_id_trgm": 'UPPER("backend_id"::text)',
    "instance_request_id_trgm": 'UPPER("request_id"::text)',
    "instance_ip_trgm": 'UPPER(HOST("ip"))',
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, expression in SEARCHED.items():
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "instances_instance" '
            f"USING gin ({expression} gin_trgm_ops)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in SEARCHED:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):
    dependencies = [("instances", "0009_instance_created_index")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
