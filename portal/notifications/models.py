"""The outbox: one row per e-mail event, written in the transaction that caused it.

A row is sent by `tasks.notification_send` (enqueued on commit) and, should the broker have lost
that message or the SMTP server have refused it, by the periodic `notifications_sweep`. A worker
claims a row with a conditional UPDATE of `claimed_until` (a short lease), so two workers never
send it at once; `sent_to` keeps who already has it, so a retry after a partial failure sends
to nobody twice.
"""

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
