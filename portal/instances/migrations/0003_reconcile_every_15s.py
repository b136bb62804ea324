"""Reconcile every 15 s: a reclaim notice (2 minutes by default) reaches the customer within
15 s of the operator's announcement rather than 30. One list() call per run."""

from django.db import migrations

NAME = "instances: reconcile with the backend"


def faster(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_15s, _ = IntervalSchedule.objects.get_or_create(every=15, period="seconds")
    PeriodicTask.objects.filter(name=NAME).update(interval=every_15s, expire_seconds=12)


def slower(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_30s, _ = IntervalSchedule.objects.get_or_create(every=30, period="seconds")
    PeriodicTask.objects.filter(name=NAME).update(interval=every_30s, expire_seconds=25)


class Migration(migrations.Migration):
    dependencies = [("instances", "0002_periodic_tasks")]

    operations = [migrations.RunPython(faster, slower)]
