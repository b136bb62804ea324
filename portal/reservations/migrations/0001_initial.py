"""Reservations move from the operations app to their own: the tables are renamed, the rows
stay, and the request's state choices keep their values."""

import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models



def move_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(
        app_label="operations", model__in=["reservation", "reservationrequest"]
    ).update(app_label="reservations")


def move_content_types_back(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(
        app_label="reservations", model__in=["reservation", "reservationrequest"]
    ).update(app_label="operations")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("catalog", "0001_initial"),
        ("orgs", "0001_initial"),
        ("operations", "0002_periodic_tasks"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Reservation',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('gpus', models.PositiveIntegerField(validators=[django.core.validators.MinValueValidator(1)], verbose_name='GPUs')),
                        ('start', models.DateTimeField()),
                        ('end', models.DateTimeField()),
                        ('price_per_gpu_hour', models.DecimalField(decimal_places=4, max_digits=10, validators=[django.core.validators.MinValueValidator(Decimal('0'))], verbose_name='committed price per GPU-hour')),
                        ('currency', models.CharField(default='USD', max_length=3)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('cancelled_at', models.DateTimeField(blank=True, null=True)),
                        ('backend_held_at', models.DateTimeField(blank=True, null=True)),
                        ('starting_notified_at', models.DateTimeField(blank=True, null=True)),
                        ('ending_notified_at', models.DateTimeField(blank=True, null=True)),
                        ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('gpu_model', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='catalog.gpumodel', verbose_name='GPU model')),
                        ('organization', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='reservations', to='orgs.organization')),
                        ('region', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='catalog.region')),
                    ],
                    options={
                        'ordering': ['-start', '-pk'],
                    },
                ),
                migrations.CreateModel(
                    name='ReservationRequest',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('gpus', models.PositiveIntegerField(verbose_name='GPUs')),
                        ('start_date', models.DateField()),
                        ('months', models.PositiveSmallIntegerField()),
                        ('note', models.TextField(blank=True)),
                        ('state', models.CharField(choices=[('submitted', 'Waiting for a quote'), ('quoted', 'Quoted'), ('accepted', 'Accepted'), ('declined', 'Declined'), ('refused', 'Refused by the operator'), ('withdrawn', 'Withdrawn')], default='submitted', max_length=16)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('quote_price', models.DecimalField(blank=True, decimal_places=4, max_digits=10, null=True, verbose_name='quoted price per GPU-hour')),
                        ('quote_note', models.TextField(blank=True)),
                        ('quoted_at', models.DateTimeField(blank=True, null=True)),
                        ('answered_at', models.DateTimeField(blank=True, null=True)),
                        ('answered_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('gpu_model', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='catalog.gpumodel', verbose_name='GPU model')),
                        ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='reservation_requests', to='orgs.organization')),
                        ('quoted_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('region', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='catalog.region')),
                        ('reservation', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='request', to='reservations.reservation')),
                    ],
                    options={
                        'ordering': ['-created_at', '-pk'],
                    },
                ),
                migrations.AddIndex(
                    model_name='reservation',
                    index=models.Index(fields=['region', 'gpu_model', 'start'], name='reservation_place'),
                ),
                migrations.AddConstraint(
                    model_name='reservation',
                    constraint=models.CheckConstraint(condition=models.Q(('end__gt', models.F('start'))), name='reservation_end_after_start'),
                ),
                migrations.AddConstraint(
                    model_name='reservation',
                    constraint=models.CheckConstraint(condition=models.Q(('gpus__gte', 1)), name='reservation_gpus_positive'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE operations_reservation RENAME TO reservations_reservation",
                    "ALTER TABLE reservations_reservation RENAME TO operations_reservation",
                ),
                migrations.RunSQL(
                    "ALTER TABLE operations_reservationrequest "
                    "RENAME TO reservations_reservationrequest",
                    "ALTER TABLE reservations_reservationrequest "
                    "RENAME TO operations_reservationrequest",
                ),
            ],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
