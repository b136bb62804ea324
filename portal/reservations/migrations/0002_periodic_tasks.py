"""The daily reservation reminders now run the reservations app's task."""

from django.db import migrations

NAME = "reservations: starting or ending in 7 days"
TASK = "portal.reservations.tasks.reservation_reminders"
OLD_NAME = "operations: reservations starting or ending in 7 days"
OLD_TASK = "portal.operations.tasks.reservation_reminders"


def register(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=OLD_NAME).delete()
    daily, _ = IntervalSchedule.objects.get_or_create(every=1, period="days")
    PeriodicTask.objects.update_or_create(
        name=NAME,
        defaults={"task": TASK, "interval": daily, "expire_seconds": 3600, "enabled": True},
    )


def unregister(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=NAME).delete()
    daily, _ = IntervalSchedule.objects.get_or_create(every=1, period="days")
    PeriodicTask.objects.update_or_create(
        name=OLD_NAME,
        defaults={"task": OLD_TASK, "interval": daily, "expire_seconds": 3600, "enabled": True},
    )


class Migration(migrations.Migration):
    dependencies = [
        ("reservations", "0001_initial"),
        ("operations", "0002_periodic_tasks"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register, unregister)]
