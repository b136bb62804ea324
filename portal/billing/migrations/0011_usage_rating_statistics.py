"""Planner statistics for rating's GROUP BY (organization, type, region, kind, price).

Without them PostgreSQL multiplies the columns' distinct counts (18,582 groups estimated where
a month of 2,000 instances has 2,880), guesses the hash table too big for work_mem and sorts the
month on disk instead. Extended statistics give it the real number of groups.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("billing", "0010_usage_sealed_price_seconds")]

    operations = [
        migrations.RunSQL(
            "CREATE STATISTICS IF NOT EXISTS usage_rating_groups (ndistinct) "
            "ON organization_id, instance_type_id, region_id, kind, unit_price "
            "FROM billing_usageinterval",
            reverse_sql="DROP STATISTICS IF EXISTS usage_rating_groups",
        )
    ]
