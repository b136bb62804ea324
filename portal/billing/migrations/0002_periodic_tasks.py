"""Register billing's periodic tasks with django-celery-beat.

- metering: every minute, the instances with new state changes or crossed boundaries;
- budgets: every 5 minutes, the budget e-mails (each threshold once a month);
- invoices: on the 1st of every month at 02:00 UTC, last month's invoices.
"""

from django.db import migrations

INTERVAL_TASKS = [
    ("billing: meter usage", "portal.billing.tasks.usage_sync_pending", 60, 55),
    ("billing: check budgets", "portal.billing.tasks.budgets_check", 300, 290),
]
MONTHLY = ("billing: issue last month's invoices", "portal.billing.tasks.invoices_issue_last_month")


def register(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds, expires in INTERVAL_TASKS:
        every, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.update_or_create(
            name=name,
            defaults={"task": task, "interval": every, "expire_seconds": expires, "enabled": True},
        )
    monthly, _ = CrontabSchedule.objects.get_or_create(
        minute="0",
        hour="2",
        day_of_month="1",
        month_of_year="*",
        day_of_week="*",
        timezone="UTC",
    )
    PeriodicTask.objects.update_or_create(
        name=MONTHLY[0], defaults={"task": MONTHLY[1], "crontab": monthly, "enabled": True}
    )


def unregister(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    names = [name for name, *_ in INTERVAL_TASKS] + [MONTHLY[0]]
    PeriodicTask.objects.filter(name__in=names).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register, unregister)]
