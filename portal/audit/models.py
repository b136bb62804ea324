"""The audit log: one append-only row per meaningful action. Write through `audit_record`.

Why append-only is enforced twice
---------------------------------
The log is what lets the operator prove afterwards who did what, so it must not be editable by
the portal, by Django admin, or by a bug.

* In the model (`save()` refuses to update an existing row, `delete()` refuses, and so do the
  default manager's `update()`, `bulk_update()` and `delete()`): the mistake is stopped in Python
  with a clear message, on every database, including SQLite in development, before any SQL.
* In PostgreSQL (a trigger, see migration 0002): everything that never goes through the model is
  stopped as well: the base manager, raw SQL, a shell on the database, another program sharing
  it. The model checks alone are easy to go around; the trigger alone would not exist on SQLite
  and would only fail with a database error deep inside a transaction.

The trigger lets exactly one kind of UPDATE through: setting `actor_user` or `organization` to
NULL, which is what deleting a user or an organization does (`on_delete=SET_NULL`). That is also
why the e-mail, token name and organization name are kept as text beside those keys: the entry
stays readable after the person or the organization is gone.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from portal.audit.actions import action_label
from portal.audit.actors import system_actor_words
from portal.lib.errors import ApplicationError


class AuditEntryImmutable(ApplicationError):
    def __init__(self) -> None:
        super().__init__("Audit entries cannot be changed or deleted.", code="audit_immutable")


class ActorKind(models.TextChoices):
    USER = "user", "User"
    STAFF = "staff", "Operator staff"
    API_TOKEN = "api_token", "API token"
    SYSTEM = "system", "System"


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    def update(self, **kwargs):
        raise AuditEntryImmutable()

    def bulk_update(self, objs, fields, batch_size=None):
        raise AuditEntryImmutable()

    def delete(self):
        raise AuditEntryImmutable()

    def for_organization(self, organization) -> "AuditEntryQuerySet":
        return self.filter(organization=organization)


class AuditEntry(models.Model):
    at = models.DateTimeField(default=timezone.now)
    action = models.CharField(max_length=64)
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_label = models.CharField(max_length=254, blank=True)
    actor_token_id = models.BigIntegerField(null=True, blank=True)
    organization = models.ForeignKey(
        "orgs.Organization",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    organization_label = models.CharField(max_length=100, blank=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    ip = models.GenericIPAddressField("IP address", null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["organization", "-at"], name="audit_org_at"),
            models.Index(fields=["action"], name="audit_action"),
            models.Index(fields=["-at"], name="audit_at"),  # the staff list, newest first
        ]

    def __str__(self) -> str:
        who = self.actor_label or self.get_actor_kind_display()
        return f"{self.action} by {who} at {self.at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AuditEntryImmutable()
        kwargs["force_insert"] = True  # never an UPDATE, even with a primary key set by hand
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditEntryImmutable()

    @property
    def action_label(self) -> str:
        return action_label(self.action)

    @property
    def actor_display(self) -> str:
        """Who, as people read it: the person or token as stored, the system in words."""
        if self.actor_kind == ActorKind.SYSTEM:
            return system_actor_words(self.actor_label)
        return self.actor_label
