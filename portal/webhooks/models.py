"""Webhook endpoints of an organization, the deliveries of events to them, and each attempt.

An event is sent to every active endpoint of the organization subscribed to its type: one
WebhookDelivery per endpoint, with the exact body (signed anew at every attempt, with the
attempt's timestamp), and one WebhookAttempt per HTTP request made.
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

URL_MAX_LENGTH = 500


def manages_webhooks(membership) -> bool:
    """Owners and admins manage webhooks (the "webhooks.manage" permission)."""
    return membership.can("webhooks.manage")


class EventType(models.TextChoices):
    INSTANCE_STATE_CHANGED = "instance.state_changed", "Instance state changed"
    INSTANCE_INTERRUPTION_NOTICE = (
        "instance.interruption_notice",
        "Interruption notice for a preemptible instance",
    )
    CLUSTER_STATE_CHANGED = "cluster.state_changed", "Cluster state changed"
    CLUSTER_INTERRUPTION_NOTICE = (
        "cluster.interruption_notice",
        "Interruption notice for a preemptible cluster (all its nodes)",
    )
    VOLUME_CHANGED = (
        "volume.changed",
        "Volume created, resized, available, deleted, failed or lost",
    )
    INSTANCE_RECLAIM_RISK = (
        "instance.reclaim_risk",
        "Reclaim risk elevated for a preemptible instance (a forecast, not a notice)",
    )
    QUOTA_DECIDED = "quota.decided", "Quota request decided"
    INVOICE_ISSUED = "invoice.issued", "Invoice issued"
    BUDGET_THRESHOLD = "budget.threshold", "Budget threshold reached"
    CAPACITY_AVAILABLE = "capacity.available", "Capacity alert: the GPUs asked for are free"


# Sent by the "Send test event" button only; nobody subscribes to it.
TEST_EVENT = "webhook.test"


class WebhookEndpoint(models.Model):
    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField("URL", max_length=URL_MAX_LENGTH)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, help_text="EventType values subscribed to.")
    # Fernet-encrypted with a key derived from SECRET_KEY (see portal/webhooks/secrets.py):
    # the secret is needed to sign, so it cannot be a hash; a database dump alone does not
    # reveal it.
    secret_encrypted = models.TextField()
    secret_hint = models.CharField(max_length=16, help_text="The secret's first characters.")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return self.url

    def subscribes_to(self, event_type: str) -> bool:
        return event_type in self.event_types

    @property
    def event_type_labels(self) -> list[str]:
        labels = dict(EventType.choices)
        return [labels.get(value, value) for value in self.event_types]


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.UUIDField(default=uuid.uuid4, help_text="The same for every endpoint.")
    event_type = models.CharField(max_length=64)
    body = models.TextField(help_text="The exact JSON sent, every attempt.")
    state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Set while an attempt is under way: other workers leave the delivery alone until then
    # (or until the attempt is recorded); a worker that died mid-request frees it by expiry.
    sending_until = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event_id"], name="one_delivery_per_endpoint_event"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} to {self.endpoint_id}"

    @property
    def next_attempt_is_due(self) -> bool:
        """The retry's time has come (the page says "any moment now", not "in 0 minutes")."""
        return self.next_attempt_at is not None and self.next_attempt_at <= timezone.now()


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveSmallIntegerField()
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="one_attempt_per_number")
        ]

    def __str__(self) -> str:
        return f"#{self.number} of {self.delivery_id}: {self.status_code or self.error}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
