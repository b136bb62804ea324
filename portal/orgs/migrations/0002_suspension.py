"""Suspensions move from the operations app to orgs: the table is renamed, the rows stay."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def move_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="operations", model="suspension").update(app_label="orgs")


def move_content_type_back(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="orgs", model="suspension").update(
        app_label="operations"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("orgs", "0001_initial"),
        ("operations", "0002_periodic_tasks"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Suspension",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "reason",
                            models.TextField(
                                help_text="Shown to the organization's members and e-mailed."
                            ),
                        ),
                        ("stop_instances", models.BooleanField(default=False)),
                        ("suspended_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("lifted_at", models.DateTimeField(blank=True, null=True)),
                        ("lift_note", models.TextField(blank=True)),
                        (
                            "lifted_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "organization",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="suspensions",
                                to="orgs.organization",
                            ),
                        ),
                        (
                            "suspended_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={"ordering": ["-suspended_at", "-pk"]},
                ),
                migrations.AddConstraint(
                    model_name="suspension",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("lifted_at__isnull", True)),
                        fields=("organization",),
                        name="one_open_suspension_per_organization",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE operations_suspension RENAME TO orgs_suspension",
                    "ALTER TABLE orgs_suspension RENAME TO operations_suspension",
                ),
            ],
        ),
        migrations.RunPython(move_content_type, move_content_type_back),
    ]
