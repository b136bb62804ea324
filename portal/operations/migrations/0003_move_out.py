"""Suspensions went to orgs and reservations to their own app (their tables were renamed
there); operations keeps no model."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0002_periodic_tasks"),
        ("orgs", "0002_suspension"),
        ("reservations", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="ReservationRequest"),
                migrations.DeleteModel(name="Reservation"),
                migrations.DeleteModel(name="Suspension"),
            ],
            database_operations=[],
        ),
    ]
