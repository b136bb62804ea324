"""Register the periodic tasks with django-celery-beat: reconciliation and the capacity snapshot.

Both every 30 seconds; each message expires after 25 s so that a backlog (workers down) does
not replay a pile of stale runs.
"""

from django.db import migrations

PERIODIC = [
    ("instances: reconcile with the backend", "portal.instances.tasks.instances_reconcile"),
    ("instances: refresh the capacity snapshot", "portal.instances.tasks.capacity_refresh"),
]


def register(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_30s, _ = IntervalSchedule.objects.get_or_create(every=30, period="seconds")
    for name, task in PERIODIC:
        PeriodicTask.objects.update_or_create(
            name=name,
            defaults={"task": task, "interval": every_30s, "expire_seconds": 25, "enabled": True},
        )


def unregister(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, _ in PERIODIC]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("instances", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register, unregister)]
