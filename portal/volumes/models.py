"""Persistent volumes: a filesystem of a size in a region, owned by an organization.

A volume outlives the machines it is attached to. It is billed per GB-month by the second
while it exists (its `VolumeSize` periods), counts against the organization's storage quota of
its region, and is deleted only on the owner's typed confirmation, never while attached.
Only `portal.volumes.services` (and the tasks through `sync`) change a volume.
"""

import re
import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone


class State(models.TextChoices):
    CREATING = "creating", "Creating"
    AVAILABLE = "available", "Available"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"
    FAILED = "failed", "Failed"
    LOST = "lost", "Lost"


# States a volume never leaves (a lost one only by staff's hand).
FINAL_STATES = frozenset({State.DELETED, State.FAILED})
# States in which a volume exists for its owner: it is billed and may be attached.
LIVE_STATES = frozenset({State.CREATING, State.AVAILABLE})

NAME_MAX_LENGTH = 63
NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
NAME_HELP = (
    "1–63 lower-case letters, digits and hyphens, starting and ending with a letter or digit "
    "(machines see the volume under /data/, e.g. /data/datasets)."
)
name_validator = RegexValidator(NAME_PATTERN, NAME_HELP)


class Volume(models.Model):
    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.PROTECT, related_name="volumes"
    )
    region = models.ForeignKey("catalog.Region", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=NAME_MAX_LENGTH, validators=[name_validator])
    size_gb = models.PositiveIntegerField("size (GB)")
    state = models.CharField(max_length=16, choices=State.choices, default=State.CREATING)
    detail = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The idempotency key towards the backend's volume_create.
    request_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    backend_id = models.CharField(max_length=128, blank=True, default="")
    # What the backend has (a resize up is asked until it matches `size_gb`).
    backend_size_gb = models.PositiveIntegerField(default=0)
    # Where machines see it, as the backend says (/data/<name>, or the nearest it allows).
    backend_mount_path = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "region", "name"],
                condition=~Q(state__in=["deleted", "failed"]),
                name="volume_name_unique_while_alive",
            ),
            models.UniqueConstraint(
                fields=["backend_id"],
                condition=~Q(backend_id=""),
                name="volume_one_per_backend_volume",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def mount_path(self) -> str:
        return self.backend_mount_path or f"/data/{self.name}"

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES


class VolumeSize(models.Model):
    """A period at one size: the volume's billing. A new period starts at create and at every
    resize; the last one ends when the volume is deleted (or found lost)."""

    volume = models.ForeignKey(Volume, on_delete=models.CASCADE, related_name="sizes")
    size_gb = models.PositiveIntegerField()
    start = models.DateTimeField()
    end = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["start", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["volume"], condition=Q(end__isnull=True), name="volume_one_open_size"
            )
        ]

    def __str__(self) -> str:
        return f"{self.volume}: {self.size_gb} GB from {self.start:%Y-%m-%d %H:%M:%S}"


class Attachment(models.Model):
    """A volume attached to a machine (an instance, by id: this app sits below instances).

    Active from the launch until the machine ends; the instances app attaches and detaches.
    """

    volume = models.ForeignKey(Volume, on_delete=models.PROTECT, related_name="attachments")
    instance_id = models.PositiveBigIntegerField(db_index=True)
    instance_name = models.CharField(max_length=63, blank=True)
    read_only = models.BooleanField(default=False)
    attached_at = models.DateTimeField(default=timezone.now)
    detached_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["attached_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["volume", "instance_id"], name="volume_attached_once_per_instance"
            )
        ]

    def __str__(self) -> str:
        return f"{self.volume} on instance {self.instance_id}"

    @property
    def active(self) -> bool:
        return self.detached_at is None


class VolumeEvent(models.Model):
    """One line of a volume's timeline."""

    volume = models.ForeignKey(Volume, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    message = models.CharField(max_length=500)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.volume}: {self.message}"


class OrphanVolume(models.Model):
    """A volume the backend holds that no portal volume owns. Never deleted automatically:
    staff decide in the admin (delete it on the backend, or keep it)."""

    class Decision(models.TextChoices):
        UNDECIDED = "", "Undecided"
        KEEP = "keep", "Keep"
        DELETE = "delete", "Delete on the backend"

    backend_id = models.CharField(max_length=128, unique=True)
    name = models.CharField(max_length=200, blank=True)
    region = models.CharField(max_length=64, blank=True)
    size_gb = models.PositiveIntegerField(default=0)
    found_at = models.DateTimeField(default=timezone.now)
    decision = models.CharField(max_length=8, choices=Decision.choices, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-found_at"]
        verbose_name = "orphan volume"

    def __str__(self) -> str:
        return f"{self.backend_id} ({self.name or 'no name'}, {self.size_gb} GB)"
