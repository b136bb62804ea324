"""Planner statistics for rating's GROUP BY (organization, type, region, kind, price).

Without them PostgreSQL multiplies the columns' distinct counts (18,582 groups estimated where
a month of 2,000 instances has 2,880), guesses the hash table too big for work_mem and sorts the
month on disk instead. Extended statistics give it the real number of groups.

PostgreSQL only: SQLite (`make run` on a machine without PostgreSQL) has no such statistics.
"""

from django.db import migrations


def _on_postgres(sql: str):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("billing", "0010_usage_sealed_price_seconds")]

    operations = [
        migrations.RunPython(
            _on_postgres(
                "CREATE STATISTICS IF NOT EXISTS usage_rating_groups (ndistinct) "
                "ON organization_id, instance_type_id, region_id, kind, unit_price "
                "FROM billing_usageinterval"
            ),
            _on_postgres("DROP STATISTICS IF EXISTS usage_rating_groups"),
        )
    ]
