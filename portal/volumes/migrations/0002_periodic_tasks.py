"""Register volume reconciliation with django-celery-beat: every 60 seconds, expiring after 55."""

from django.db import migrations

PERIODIC = [("volumes: reconcile with the backend", "portal.volumes.tasks.volumes_reconcile")]


def register(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_60s, _ = IntervalSchedule.objects.get_or_create(every=60, period="seconds")
    for name, task in PERIODIC:
        PeriodicTask.objects.update_or_create(
            name=name,
            defaults={"task": task, "interval": every_60s, "expire_seconds": 55, "enabled": True},
        )


def unregister(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, _ in PERIODIC]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("volumes", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register, unregister)]
