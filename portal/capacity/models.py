"""The fleet over time: one compact row per region, GPU model and period (5 minutes).

Each capacity report adds one sample to the row of its period: the GPUs of the fleet, used by
the operator's own work (internal), sold on-demand, sold preemptible, reserved, and free. A
row keeps the sums and the number of samples, so the period's average is sum / samples and its
GPU-hours are that average times the period. Written by `portal.capacity.history`.
"""

from django.db import models

PERIOD_SECONDS = 300


class CapacityPeriod(models.Model):
    region = models.CharField(max_length=32)
    gpu_model = models.CharField("GPU model", max_length=32)
    start = models.DateTimeField(help_text="Start of the period (PERIOD_SECONDS long).")
    samples = models.PositiveIntegerField(default=0)
    # Sums over the samples of GPUs.
    fleet = models.PositiveBigIntegerField(default=0)
    internal = models.PositiveBigIntegerField(default=0)
    on_demand = models.PositiveBigIntegerField(default=0)
    preemptible = models.PositiveBigIntegerField(default=0)
    reserved = models.PositiveBigIntegerField(default=0)
    free = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["start", "region", "gpu_model"]
        constraints = [
            models.UniqueConstraint(
                fields=["region", "gpu_model", "start"], name="capacity_period_unique"
            )
        ]
        indexes = [models.Index(fields=["start"], name="capacity_period_start")]

    def __str__(self) -> str:
        return f"{self.region} {self.gpu_model} {self.start:%Y-%m-%d %H:%M}"
