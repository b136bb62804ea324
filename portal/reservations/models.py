"""Reserved capacity: GPUs held for one organization for a period at a committed price, and
customers' requests for it, quoted by staff. Writes go through `portal.reservations.services`.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from portal.web.fields import UnitPriceField


class ReservationQuerySet(models.QuerySet["Reservation"]):
    def in_force(self) -> "ReservationQuerySet":
        return self.filter(cancelled_at__isnull=True)

    def overlapping(self, start, end) -> "ReservationQuerySet":
        return self.in_force().filter(start__lt=end, end__gt=start)

    def active_at(self, moment) -> "ReservationQuerySet":
        return self.in_force().filter(start__lte=moment, end__gt=moment)


class Reservation(models.Model):
    """GPUs of one model in one region held for one organization from `start` to `end`.

    Billed at `price_per_gpu_hour` for every reserved GPU-hour whether used or not; the
    organization's launches of that model there draw on it first (and are not billed again).
    """

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.PROTECT, related_name="reservations"
    )
    region = models.ForeignKey("catalog.Region", on_delete=models.PROTECT, related_name="+")
    gpu_model = models.ForeignKey(
        "catalog.GpuModel", on_delete=models.PROTECT, related_name="+", verbose_name="GPU model"
    )
    gpus = models.PositiveIntegerField("GPUs", validators=[MinValueValidator(1)])
    start = models.DateTimeField()
    end = models.DateTimeField()
    price_per_gpu_hour = UnitPriceField(
        "committed price per GPU-hour", validators=[MinValueValidator(Decimal(0))]
    )
    currency = models.CharField(max_length=3, default=settings.CURRENCY)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # Set once the backend holds the GPUs (`reserve`), or left empty for a driver without it.
    backend_held_at = models.DateTimeField(null=True, blank=True)
    starting_notified_at = models.DateTimeField(null=True, blank=True)
    ending_notified_at = models.DateTimeField(null=True, blank=True)

    objects = ReservationQuerySet.as_manager()

    class Meta:
        ordering = ["-start", "-pk"]
        indexes = [models.Index(fields=["region", "gpu_model", "start"], name="reservation_place")]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=F("start")), name="reservation_end_after_start"
            ),
            models.CheckConstraint(condition=Q(gpus__gte=1), name="reservation_gpus_positive"),
        ]

    def __str__(self) -> str:
        return f"R-{self.pk}: {self.gpus}× {self.gpu_model} in {self.region.code}"

    @property
    def backend_id(self) -> str:
        return f"reservation-{self.pk}"

    def status(self, now=None) -> str:
        now = now or timezone.now()
        if self.cancelled_at:
            return "cancelled"
        if now < self.start:
            return "upcoming"
        if now >= self.end:
            return "ended"
        return "active"

    @property
    def hours(self) -> Decimal:
        return Decimal((self.end - self.start).total_seconds()) / Decimal(3600)


class ReservationRequestState(models.TextChoices):
    SUBMITTED = "submitted", "Waiting for a quote"
    QUOTED = "quoted", "Quoted"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    REFUSED = "refused", "Refused by the operator"
    WITHDRAWN = "withdrawn", "Withdrawn"
    EXPIRED = "expired", "Quote expired"


OPEN_REQUEST_STATES = (ReservationRequestState.SUBMITTED, ReservationRequestState.QUOTED)


class ReservationRequest(models.Model):
    """A customer asks for N GPUs of a model in a region from a date for some months."""

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="reservation_requests"
    )
    region = models.ForeignKey("catalog.Region", on_delete=models.PROTECT, related_name="+")
    gpu_model = models.ForeignKey(
        "catalog.GpuModel", on_delete=models.PROTECT, related_name="+", verbose_name="GPU model"
    )
    gpus = models.PositiveIntegerField("GPUs")
    start_date = models.DateField()
    months = models.PositiveSmallIntegerField()
    note = models.TextField(blank=True)
    state = models.CharField(
        max_length=16,
        choices=ReservationRequestState.choices,
        default=ReservationRequestState.SUBMITTED,
    )
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    quote_price = UnitPriceField("quoted price per GPU-hour", null=True, blank=True)
    quote_note = models.TextField(blank=True)
    quoted_at = models.DateTimeField(null=True, blank=True)
    quoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A quote holds until then: a reminder goes out a couple of days before, and past it the
    # request is "quote expired" and can no longer be accepted (reservations/reminders.py).
    quote_expires_at = models.DateTimeField("quote valid until", null=True, blank=True)
    quote_reminded_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reservation = models.OneToOneField(
        Reservation, null=True, blank=True, on_delete=models.SET_NULL, related_name="request"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.organization}: {self.gpus}× {self.gpu_model} {self.region.code}"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_REQUEST_STATES
