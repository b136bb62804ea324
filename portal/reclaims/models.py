"""Reclaim orders: the operator takes GPUs back from preemptible instances on its own terms.

An order asks for GPUs of a model in a region by a deadline, from a backend shortfall, from
staff, or from the spot market (a price above an instance's bid). The portal chooses the
victims by the policy, gives each its notice, ends them at the end of the notice, and tracks
the order until every victim has ended. Only `portal.reclaims.services` writes these rows.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from portal.web.fields import UnitPriceField


class Order(models.TextChoices):
    PRICE_THEN_NEWEST = (
        "price_then_newest",
        "Lowest max price first, then the most recently launched",
    )
    NEWEST = "newest", "The most recently launched first"


class ReclaimPolicy(models.Model):
    """The operator's policy: one row (pk 1), edited in the admin."""

    notice_seconds = models.PositiveIntegerField(
        "notice window (seconds)",
        default=120,
        help_text="How long each chosen instance runs after its notice; never below the "
        "operator's minimum (RECLAIM_MIN_NOTICE_SECONDS).",
    )
    preemptible_only = models.BooleanField(
        default=True, help_text="Only preemptible instances are reclaimed (required)."
    )
    spare_reserved = models.BooleanField(
        "never reclaim reserved capacity",
        default=True,
        help_text="Capacity held by a reservation is never reclaimed (required).",
    )
    order = models.CharField(max_length=32, choices=Order.choices, default=Order.PRICE_THEN_NEWEST)
    whole_machines = models.BooleanField(
        default=True, help_text="Whole machines only: an instance is never cut (required)."
    )
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "reclaim policy"
        verbose_name_plural = "reclaim policy"

    def __str__(self) -> str:
        return f"Reclaim policy: {self.get_order_display().lower()}, {self.notice_seconds} s notice"


class Source(models.TextChoices):
    BACKEND = "backend", "Backend shortfall"
    STAFF = "staff", "Staff request"
    PRICE = "price", "Spot price above the bid"


class OrderState(models.TextChoices):
    OPEN = "open", "Open: victims under notice"
    DONE = "done", "Done: the GPUs are free"
    NOTHING = "nothing", "Nothing to reclaim"


class ReclaimOrder(models.Model):
    region = models.ForeignKey("catalog.Region", on_delete=models.PROTECT, related_name="+")
    gpu_model = models.ForeignKey(
        "catalog.GpuModel", on_delete=models.PROTECT, related_name="+", verbose_name="GPU model"
    )
    gpus = models.PositiveIntegerField("GPUs asked", validators=[MinValueValidator(1)])
    deadline = models.DateTimeField()
    source = models.CharField(max_length=16, choices=Source.choices)
    reason = models.CharField(max_length=300, blank=True)
    notice_seconds = models.PositiveIntegerField("notice (seconds)")
    state = models.CharField(max_length=16, choices=OrderState.choices, default=OrderState.OPEN)
    # What the order could do, said when it was made.
    returnable_gpus = models.PositiveIntegerField(
        "GPUs it can return", default=0, help_text="GPUs of the chosen victims."
    )
    feasible = models.BooleanField(
        "deadline met with full notice", default=True, help_text="Said when the order was made."
    )
    earliest_at = models.DateTimeField(
        "earliest time with full notice", help_text="Now plus the notice, when it was made."
    )
    end_at = models.DateTimeField("victims end at")
    summary = models.CharField(max_length=500, blank=True)
    # The backend's shortfall that made it (backend orders), for the record.
    reported_shortfall = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    freed_at = models.DateTimeField("GPUs free at", null=True, blank=True)
    met = models.BooleanField(
        "met on time with full notice",
        null=True,
        blank=True,
        help_text="Every victim ended by the deadline after its full notice (known when done).",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "region", "gpu_model"], name="reclaim_open")]
        constraints = [
            models.CheckConstraint(condition=models.Q(gpus__gte=1), name="reclaim_gpus_positive")
        ]

    def __str__(self) -> str:
        return f"RO-{self.pk}: {self.gpus} GPUs by {self.deadline:%H:%M:%S} UTC"

    @property
    def short_gpus(self) -> int:
        return max(0, self.gpus - self.returnable_gpus)


class ReclaimVictim(models.Model):
    order = models.ForeignKey(ReclaimOrder, on_delete=models.CASCADE, related_name="victims")
    instance = models.OneToOneField(
        "instances.Instance", on_delete=models.PROTECT, related_name="reclaim_victim"
    )
    rank = models.PositiveIntegerField(help_text="Its place in the policy's order (1 first).")
    gpus = models.PositiveIntegerField("GPUs")
    price_per_hour = UnitPriceField(
        help_text="Its max price (bid), else the catalog's preemptible price, when chosen."
    )
    launched_at = models.DateTimeField(null=True, blank=True)
    noticed_at = models.DateTimeField()
    reclaim_at = models.DateTimeField("ends at")
    backend_told_at = models.DateTimeField(
        null=True, blank=True, help_text="When the backend accepted the reclaim."
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_state = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["order", "rank"]

    def __str__(self) -> str:
        return f"RO-{self.order_id} #{self.rank}: {self.instance_id}"

    @property
    def notice_given(self) -> float:
        return (self.reclaim_at - self.noticed_at).total_seconds()
