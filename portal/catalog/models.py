"""What can be launched: regions, GPU models, instance types with their prices, images."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from portal.web.fields import UnitPriceField

HOURS_PER_MONTH = Decimal("730")  # the cloud industry's convention for a monthly price

code_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]*[a-z0-9]$", "Use lower-case letters, digits and hyphens."
)


class Region(models.Model):
    code = models.CharField(max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(max_length=100)
    location = models.CharField(max_length=100, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class GpuModel(models.Model):
    code = models.CharField(max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(max_length=100, help_text="e.g. NVIDIA H100 80GB SXM")
    memory_gb = models.PositiveIntegerField()

    class Meta:
        ordering = ["name"]
        verbose_name = "GPU model"

    def __str__(self) -> str:
        return self.name


class InstanceType(models.Model):
    code = models.SlugField(max_length=64, unique=True, help_text="e.g. gpu_8x_h100")
    name = models.CharField(max_length=100)
    gpu_model = models.ForeignKey(GpuModel, on_delete=models.PROTECT, related_name="instance_types")
    gpu_count = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    vcpus = models.PositiveSmallIntegerField()
    memory_gb = models.PositiveIntegerField()
    local_disk_gb = models.PositiveIntegerField()
    regions = models.ManyToManyField(Region, related_name="instance_types", blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["gpu_model__name", "gpu_count"]

    def __str__(self) -> str:
        return self.name


class PriceQuerySet(models.QuerySet["Price"]):
    def in_force(self, at=None) -> "PriceQuerySet":
        return self.filter(valid_from__lte=at or timezone.now())


class Price(models.Model):
    """A price of an instance type from `valid_from` on. Prices are added, never rewritten."""

    instance_type = models.ForeignKey(InstanceType, on_delete=models.PROTECT, related_name="prices")
    valid_from = models.DateTimeField(default=timezone.now)
    on_demand_hourly = UnitPriceField()
    preemptible_hourly = UnitPriceField()
    stopped_hourly = UnitPriceField(
        default=Decimal("0"),
        help_text="What a stopped instance still costs per hour (its reserved disk).",
    )
    currency = models.CharField(max_length=3, default=settings.CURRENCY)
    created_at = models.DateTimeField(default=timezone.now)

    objects = PriceQuerySet.as_manager()

    class Meta:
        ordering = ["instance_type", "-valid_from"]
        get_latest_by = "valid_from"
        constraints = [
            models.UniqueConstraint(
                fields=["instance_type", "valid_from"], name="one_price_per_type_and_start"
            ),
            models.CheckConstraint(
                condition=models.Q(on_demand_hourly__gte=0, preemptible_hourly__gte=0),
                name="price_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instance_type} from {self.valid_from:%Y-%m-%d}: {self.on_demand_hourly}"


class StoragePrice(models.Model):
    """The price of volume storage in a region, per GB-month (730 hours), from `valid_from`
    on. Billed by the second: a GB kept one hour costs per_gb_month / 730. Prices are added,
    never rewritten: a change never reprices earlier storage."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="storage_prices")
    valid_from = models.DateTimeField(default=timezone.now)
    per_gb_month = UnitPriceField("price per GB-month")
    currency = models.CharField(max_length=3, default=settings.CURRENCY)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["region", "-valid_from"]
        get_latest_by = "valid_from"
        verbose_name = "volume storage price"
        constraints = [
            models.UniqueConstraint(
                fields=["region", "valid_from"], name="one_storage_price_per_region_and_start"
            ),
            models.CheckConstraint(
                condition=models.Q(per_gb_month__gte=0), name="storage_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"Storage in {self.region} from {self.valid_from:%Y-%m-%d}: {self.per_gb_month}"


class Image(models.Model):
    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
