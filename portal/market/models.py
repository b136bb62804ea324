"""The spot market: per offer (region × instance type) the operator's settings for the
preemptible price, the price history (a row per change, never rewritten), and capacity alerts.

A price row is in force from `valid_from` to `valid_until` (None: still in force). Both are
whole seconds, so that billing counts every second once (see portal.billing.rating). Each row
also carries the sums of its offer's history before it (`seconds_before`,
`price_seconds_before`), so that billing rates any stretch of time from two rows (the ones in
force at its start and at its end) instead of every change in between.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from portal.web.fields import UnitPriceField


class SpotMarket(models.Model):
    """How the preemptible price of one offer moves: between `floor` and `ceiling`, toward
    `target_share` of the spare GPUs sold, by at most `max_step` per change."""

    region = models.ForeignKey("catalog.Region", on_delete=models.PROTECT, related_name="+")
    instance_type = models.ForeignKey(
        "catalog.InstanceType", on_delete=models.PROTECT, related_name="spot_markets"
    )
    floor = UnitPriceField(help_text="The lowest price per hour.")
    ceiling = UnitPriceField(help_text="The highest price per hour.")
    target_share = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("80"),
        help_text="The share of the spare GPUs (in %) the price aims to keep sold.",
    )
    max_step = UnitPriceField(help_text="The largest change per hour of one adjustment.")
    currency = models.CharField(max_length=3, default=settings.CURRENCY)
    enabled = models.BooleanField(
        default=True, help_text="Off: the price stays where it is (staff may still set it)."
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["instance_type__name", "region__code"]
        verbose_name = "spot price setting"
        constraints = [
            models.UniqueConstraint(
                fields=["region", "instance_type"], name="market_one_per_offer"
            ),
            models.CheckConstraint(
                condition=Q(floor__gte=0, ceiling__gte=models.F("floor"), max_step__gt=0),
                name="market_bounds_sane",
            ),
            models.CheckConstraint(
                condition=Q(target_share__gte=0, target_share__lte=100),
                name="market_target_is_a_share",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instance_type} in {self.region.code}"


class PriceReason(models.TextChoices):
    INITIAL = "initial", "First price"
    MARKET = "market", "Spare capacity"
    MANUAL = "manual", "Set by staff"


class SpotPrice(models.Model):
    """The preemptible price of one offer from `valid_from` until `valid_until`.

    `seconds_before` and `price_seconds_before`: the seconds the offer's earlier rows cover and
    their Σ seconds × price (per hour), up to this row's `valid_from`. Written with the row
    (`portal.market.services`), never by hand: rating trusts them.
    """

    region = models.ForeignKey("catalog.Region", on_delete=models.PROTECT, related_name="+")
    instance_type = models.ForeignKey(
        "catalog.InstanceType", on_delete=models.PROTECT, related_name="spot_prices"
    )
    price = UnitPriceField(help_text="Per instance-hour.")
    currency = models.CharField(max_length=3, default=settings.CURRENCY)
    valid_from = models.DateTimeField()
    valid_until = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=16, choices=PriceReason.choices)
    detail = models.CharField(max_length=300, blank=True)
    free_gpus = models.PositiveIntegerField(null=True, blank=True)
    total_gpus = models.PositiveIntegerField(null=True, blank=True)
    sold_share = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # No defaults: a row written without its history's sums is refused, not rated wrong.
    seconds_before = models.BigIntegerField(editable=False)
    price_seconds_before = models.DecimalField(max_digits=30, decimal_places=4, editable=False)

    class Meta:
        ordering = ["instance_type", "region", "-valid_from"]
        get_latest_by = "valid_from"
        indexes = [
            models.Index(
                fields=["instance_type", "region", "valid_from"], name="spot_price_offer_from"
            ),
            # Billing asks whether the market had priced anything before a moment.
            models.Index(fields=["valid_from"], name="spot_price_from"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["instance_type", "region", "valid_from"], name="spot_one_per_start"
            ),
            models.UniqueConstraint(
                fields=["instance_type", "region"],
                condition=Q(valid_until__isnull=True),
                name="spot_one_current",
            ),
            models.CheckConstraint(condition=Q(price__gte=0), name="spot_price_not_negative"),
            models.CheckConstraint(
                condition=Q(valid_until__isnull=True) | Q(valid_until__gt=models.F("valid_from")),
                name="spot_until_after_from",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instance_type} in {self.region_id}: {self.price} from {self.valid_from}"

    @property
    def seconds(self) -> int:
        """How long the row was in force (0 while it still is)."""
        if self.valid_until is None:
            return 0
        return int((self.valid_until - self.valid_from).total_seconds())

    def sums_after(self) -> tuple[int, Decimal]:
        """`seconds_before` and `price_seconds_before` of the offer's row after this one."""
        return (
            self.seconds_before + self.seconds,
            self.price_seconds_before + self.seconds * self.price,
        )


ALERT_TTL_DAYS = 30
ALERTS_PER_ORGANIZATION = 20


class CapacityAlert(models.Model):
    """ "Tell me when `count` × `instance_type` are free in `region`" (and optionally the spot
    price is at most `max_price`). Fires once, then rests until false again."""

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="capacity_alerts"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="capacity_alerts"
    )
    region = models.ForeignKey("catalog.Region", on_delete=models.PROTECT, related_name="+")
    instance_type = models.ForeignKey(
        "catalog.InstanceType", on_delete=models.PROTECT, related_name="+"
    )
    count = models.PositiveSmallIntegerField(default=1)
    max_price = UnitPriceField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    # Set when it fired; cleared when the condition is false again (it may fire again then).
    fired_at = models.DateTimeField(null=True, blank=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["expires_at"], name="alert_expires")]

    def __str__(self) -> str:
        return f"{self.count} x {self.instance_type} in {self.region_id}"
