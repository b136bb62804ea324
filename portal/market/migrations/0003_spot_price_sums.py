"""Each spot price row carries the sums of its offer's history before it (seconds covered and
Σ seconds × price), so that rating reads two rows per usage interval instead of every change
it spans. The existing rows get theirs here, offer by offer, in time order."""

from decimal import Decimal

from django.db import migrations, models


def sums_fill(apps, schema_editor):
    SpotPrice = apps.get_model("market", "SpotPrice")
    offers = SpotPrice.objects.values_list("region_id", "instance_type_id").distinct()
    for region_id, instance_type_id in list(offers):
        rows = list(
            SpotPrice.objects.filter(region_id=region_id, instance_type_id=instance_type_id)
            .order_by("valid_from")
            .only("pk", "price", "valid_from", "valid_until")
        )
        seconds, price_seconds = 0, Decimal(0)
        for row in rows:
            row.seconds_before, row.price_seconds_before = seconds, price_seconds
            if row.valid_until is not None:
                covered = int((row.valid_until - row.valid_from).total_seconds())
                seconds += covered
                price_seconds += covered * row.price
        SpotPrice.objects.bulk_update(
            rows, ["seconds_before", "price_seconds_before"], batch_size=1000
        )


class Migration(migrations.Migration):
    dependencies = [("market", "0002_periodic_tasks")]

    operations = [
        migrations.AddField(
            model_name="spotprice",
            name="seconds_before",
            field=models.BigIntegerField(default=0, editable=False),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="spotprice",
            name="price_seconds_before",
            field=models.DecimalField(
                decimal_places=4, default=Decimal(0), editable=False, max_digits=30
            ),
            preserve_default=False,
        ),
        migrations.RunPython(sums_fill, migrations.RunPython.noop, elidable=False),
    ]
