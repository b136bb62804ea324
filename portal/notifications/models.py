"""The outbox: one row per e-mail event, written in the transaction that caused it.

A row is sent by `tasks.notification_send` (enqueued on commit) and, should the broker have lost
that message or the SMTP server have refused it, by the periodic `notifications_sweep`. A worker
claims a row with a conditional UPDATE of `claimed_until` (a short lease), so two workers never
send it at once; `sent_to` keeps who already has it, so a retry after a partial failure sends
to nobody twice.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Notification(models.Model):
    kind = models.CharField(max_length=64)
    params = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    sent_to = models.JSONField(default=list, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    # Rows of one kind with the same key that are still unsent when the first is delivered go
    # out as one summary e-mail (many instances launched at once: one "running" mail).
    batch_key = models.CharField(max_length=128, blank=True, db_index=True)
    batched_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(sent_at__isnull=True, failed_at__isnull=True),
                name="notification_pending",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"

    @property
    def state(self) -> str:
        if self.sent_at:
            return "sent"
        if self.failed_at:
            return "failed"
        return "queued"


class EmailPreference(models.Model):
    """Which categories of e-mail (registry.CATEGORIES) a person does not want. Security mail
    and everything without a category is always sent; no row means every e-mail."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="email_preference"
    )
    muted = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"e-mail preferences of {self.user_id}"
