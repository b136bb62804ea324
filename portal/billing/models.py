"""Metered usage, invoices, credits and budgets.

Usage: `UsageInterval` rows are derived from the instance timeline (InstanceEvent) by
`portal.billing.services.usage_sync_instance`; each is a stretch of one instance in one billed
state at one unit price, never crossing a UTC midnight or a price change. Invoices are
snapshots: once issued, only the payment fields change; corrections are credit notes.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from portal.billing.metering import interval_key
from portal.billing.money import Money
from portal.web.fields import MoneyField, UnitPriceField


class UsageKind(models.TextChoices):
    ON_DEMAND = "on_demand", "On-demand"
    PREEMPTIBLE = "preemptible", "Preemptible"
    STOPPED = "stopped", "Stopped (reserved disk)"
    # Invoice lines only (portal.billing.reservations): a reservation's committed GPU-hours, and
    # the on-demand usage it covered, taken off again so that it is not billed twice.
    RESERVED = "reserved", "Reserved capacity"
    COVERED = "covered", "Covered by reservation"
    # Invoice lines only (portal.billing.storage): volumes, GB-seconds at a price per GB-month.
    STORAGE = "storage", "Volume storage"


class UsageInterval(models.Model):
    """One instance in one billed state from `start` to `end` (None: still going) at a price.

    Boundaries are whole seconds. Intervals of an instance never overlap; they are split at
    every UTC midnight (so also at month ends) and at every price change of the type.
    """

    instance = models.ForeignKey(
        "instances.Instance", on_delete=models.CASCADE, related_name="usage_intervals"
    )
    # Copied from the instance so that rating groups without joins.
    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="usage_intervals"
    )
    instance_type = models.ForeignKey(
        "catalog.InstanceType", on_delete=models.PROTECT, related_name="+"
    )
    region = models.ForeignKey("catalog.Region", on_delete=models.PROTECT, related_name="+")
    gpus = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=16, choices=UsageKind.choices)
    start = models.DateTimeField()
    end = models.DateTimeField(null=True, blank=True)
    price = models.ForeignKey(
        "catalog.Price", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    unit_price = UnitPriceField(help_text="Per hour.")
    currency = models.CharField(max_length=3, default=settings.CURRENCY)
    # Usage of a node of a cluster (copied from the instance): the invoice gives the nodes of
    # clusters a line of their own per type and region.
    cluster = models.BooleanField(default=False)
    # A closed preemptible interval's seconds × price at the spot price in force each second
    # (the unit price where the market had none), sealed when it closes (billing.sealing), so
    # that rating reads a column instead of the price history. None: not sealed (open, another
    # kind, or written outside metering); rating computes those.
    sealed_price_seconds = models.DecimalField(
        max_digits=30, decimal_places=6, null=True, blank=True, editable=False
    )

    class Meta:
        ordering = ["instance", "start"]
        indexes = [
            models.Index(fields=["organization", "start"], name="usage_org_start"),
            models.Index(fields=["start"], name="usage_start"),
            models.Index(fields=["start"], condition=Q(end__isnull=True), name="usage_open"),
            # An organization's open intervals (the live part of its month, its run rate),
            # without reading every other organization's.
            models.Index(
                fields=["organization", "start"],
                condition=Q(end__isnull=True),
                name="usage_org_open",
            ),
            # Preemptible intervals whose spot prices are not sealed (the open ones, mostly):
            # whether rating must look prices up for a period is one probe of this index.
            models.Index(
                fields=["start"],
                condition=Q(kind="preemptible", sealed_price_seconds__isnull=True),
                name="usage_spot_unsealed",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["instance", "start"], name="usage_one_per_start"),
            models.CheckConstraint(
                condition=Q(end__isnull=True) | Q(end__gt=models.F("start")),
                name="usage_end_after_start",
            ),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="usage_price_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.instance_id} {self.kind} {self.start:%Y-%m-%d %H:%M:%S}–{self.end or '…'}"

    def key(self) -> tuple:
        return interval_key(self)


class InstanceMeter(models.Model):
    """How far the metering of one instance has read its timeline."""

    instance = models.OneToOneField(
        "instances.Instance", on_delete=models.CASCADE, primary_key=True, related_name="meter"
    )
    last_event_id = models.BigIntegerField(default=0)
    synced_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"meter of {self.instance_id} at event {self.last_event_id}"


class NumberSequence(models.Model):
    """A gapless counter per series ("BF-2026"): locked, incremented and used in one transaction."""

    series = models.CharField(max_length=32, primary_key=True)
    last_value = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.series}: {self.last_value}"


class Invoice(models.Model):
    """The bill of one organization for one calendar month. Immutable once issued."""

    # Fields that may change after issue: the payment and the e-mail bookkeeping.
    MUTABLE_FIELDS = frozenset({"paid_at", "payment_reference", "paid_by", "emailed_at"})

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.PROTECT, related_name="invoices"
    )
    number = models.CharField(max_length=32, unique=True)
    month = models.DateField(help_text="First day of the month billed.")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    issued_at = models.DateTimeField()
    due_at = models.DateTimeField()
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    customer_name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3)
    subtotal = MoneyField()
    credits_applied = MoneyField(default=Decimal("0"))
    tax_rate = models.DecimalField(max_digits=6, decimal_places=4)
    tax = MoneyField()
    total = MoneyField()
    prepaid_applied = MoneyField(default=Decimal("0"))
    amount_due = MoneyField()
    payment_provider = models.CharField(max_length=32)
    paid_at = models.DateTimeField(null=True, blank=True)
    paid_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    payment_reference = models.CharField(max_length=200, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-month", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "month"], name="invoice_one_per_month"),
            models.CheckConstraint(
                condition=Q(amount_due__gte=0, subtotal__gte=0, tax__gte=0),
                name="invoice_amounts_not_negative",
            ),
        ]
        indexes = [models.Index(fields=["paid_at", "due_at"], name="invoice_unpaid_due")]

    def __str__(self) -> str:
        return self.number

    def save(self, *args, **kwargs):
        """Issued invoices are immutable: only the payment fields may be saved again."""
        if self.pk is not None:
            fields = kwargs.get("update_fields")
            if fields is None or not set(fields) <= self.MUTABLE_FIELDS:
                raise ValueError(f"Invoice {self.number} is issued and cannot be changed.")
        super().save(*args, **kwargs)

    def money(self, field: str) -> Money:
        return Money(getattr(self, field), self.currency)

    @property
    def is_paid(self) -> bool:
        return self.paid_at is not None


class InvoiceLine(models.Model):
    """Usage of one instance type in one region, of one kind, at one unit price; or the volume
    storage of a region at one price per GB-month (kind storage: no instance type, `seconds`
    are GB-seconds)."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines")
    position = models.PositiveSmallIntegerField()
    instance_type = models.ForeignKey(
        "catalog.InstanceType", on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    region = models.ForeignKey("catalog.Region", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=UsageKind.choices)
    description = models.CharField(max_length=200)
    seconds = models.BigIntegerField()
    gpu_seconds = models.BigIntegerField()
    unit_price = UnitPriceField(help_text="Per instance-hour (preemptible: the average paid).")
    amount = MoneyField()
    # Preemptible lines: [[price per hour, seconds], ...] at each spot price, lowest first.
    price_breakdown = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="invoice_line_position")
        ]

    def __str__(self) -> str:
        return f"Line {self.position}"

    @property
    def hours(self) -> Decimal:
        return Decimal(self.seconds) / Decimal(3600)

    @property
    def gpu_hours(self) -> Decimal:
        return Decimal(self.gpu_seconds) / Decimal(3600)

    @property
    def is_storage(self) -> bool:
        return self.kind == UsageKind.STORAGE

    @property
    def gpus(self) -> int:
        """GPUs billed at once on the line (a reservation's: how many it holds)."""
        return self.gpu_seconds // self.seconds if self.seconds else 0

    @property
    def price_per_gpu_hour(self) -> Decimal | None:
        """A reserved line's committed price per GPU-hour (its unit price is for all its GPUs)."""
        return self.unit_price / self.gpus if self.gpus else None

    @property
    def gb_months(self) -> Decimal:
        """For a storage line: its GB-seconds in GB-months of 730 hours."""
        return Decimal(self.seconds) / (Decimal(730) * 3600)


class CreditKind(models.TextChoices):
    CREDIT = "credit", "Credit (reduces the taxable amount)"
    PREPAID = "prepaid", "Prepaid balance (pays the total)"


class CreditGrant(models.Model):
    """Money staff gave an organization (credit) or that it paid in advance (prepaid balance)."""

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.PROTECT, related_name="credit_grants"
    )
    kind = models.CharField(max_length=16, choices=CreditKind.choices, default=CreditKind.CREDIT)
    amount = MoneyField()
    currency = models.CharField(max_length=3, default=settings.CURRENCY)
    reason = models.CharField(max_length=500)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    credit_note = models.OneToOneField(
        "CreditNote", null=True, blank=True, on_delete=models.PROTECT, related_name="grant"
    )

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_grant_positive"),
            models.CheckConstraint(condition=~Q(reason=""), name="credit_grant_has_reason"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} {self.currency} for {self.organization}"


class CreditApplication(models.Model):
    """How much of a grant an invoice used."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="applications")
    grant = models.ForeignKey(CreditGrant, on_delete=models.PROTECT, related_name="applications")
    amount = MoneyField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_application_positive")
        ]

    def __str__(self) -> str:
        return f"{self.amount} of grant {self.grant_id} on {self.invoice_id}"


class CreditNote(models.Model):
    """A correction of an issued invoice: an amount taken off it, with the reason."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    number = models.CharField(max_length=32, unique=True)
    amount = MoneyField()
    reason = models.CharField(max_length=500)
    issued_at = models.DateTimeField()
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["issued_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_note_positive"),
            models.CheckConstraint(condition=~Q(reason=""), name="credit_note_has_reason"),
        ]

    def __str__(self) -> str:
        return self.number


class Payment(models.Model):
    """A payment recorded against an invoice (by staff, or later by a payment adapter)."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    amount = MoneyField()
    provider = models.CharField(max_length=32)
    reference = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["received_at", "id"]

    def __str__(self) -> str:
        return f"{self.amount} on {self.invoice_id}"


class Budget(models.Model):
    """What an organization means to spend a month, and whether to stop launches there."""

    organization = models.OneToOneField(
        "orgs.Organization", on_delete=models.CASCADE, related_name="budget"
    )
    amount = MoneyField()
    currency = models.CharField(max_length=3, default=settings.CURRENCY)
    hard_limit = models.BooleanField(
        default=False, help_text="At 100 % of the budget, new launches are refused."
    )
    stop_instances = models.BooleanField(
        "stop running instances at the hard limit",
        default=False,
        help_text="With the hard limit: at 100 % the running instances are stopped too (their "
        "disks are kept; start them again once the budget allows).",
    )
    updated_at = models.DateTimeField()
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="budget_positive")]

    def __str__(self) -> str:
        return f"{self.organization}: {self.amount} {self.currency}"

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)


class BudgetAlert(models.Model):
    """A budget e-mail sent: one per organization, month and threshold, ever."""

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="budget_alerts"
    )
    month = models.DateField()
    threshold = models.PositiveSmallIntegerField()
    spend = MoneyField()
    budget_amount = MoneyField()
    sent_at = models.DateTimeField()

    class Meta:
        ordering = ["-month", "threshold"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "month", "threshold"], name="budget_alert_once_a_month"
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization} {self.month:%Y-%m} {self.threshold} %"


class DunningStep(models.Model):
    """A step taken for an overdue invoice: a reminder ("reminder-7": 7 days after the due
    date) or the suspension ("suspended"). Unique per invoice and step: each is taken once."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="dunning_steps")
    step = models.CharField(max_length=32)
    taken_at = models.DateTimeField()
    suspension = models.ForeignKey(
        "orgs.Suspension", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["taken_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "step"], name="dunning_step_once")
        ]

    def __str__(self) -> str:
        return f"{self.invoice_id}: {self.step}"
