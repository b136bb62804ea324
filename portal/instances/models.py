"""GPU instances of an organization and the timeline of what happened to each.

Only `portal.instances.lifecycle` changes `Instance.state`; see the transition table there.
"""

import re
import uuid
from datetime import datetime

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from portal.web.fields import UnitPriceField


class State(models.TextChoices):
    PENDING = "pending", "Pending"
    PROVISIONING = "provisioning", "Provisioning"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    STARTING = "starting", "Starting"
    REBOOTING = "rebooting", "Rebooting"
    TERMINATING = "terminating", "Terminating"
    TERMINATED = "terminated", "Terminated"
    FAILED = "failed", "Failed"
    INTERRUPTED = "interrupted", "Interrupted"


# States an instance never leaves.
FINAL_STATES = frozenset({State.TERMINATED, State.FAILED, State.INTERRUPTED})
# States in which a Celery task is driving the instance towards a settled state.
TRANSITIONAL_STATES = frozenset(
    {
        State.PENDING,
        State.PROVISIONING,
        State.STOPPING,
        State.STARTING,
        State.REBOOTING,
        State.TERMINATING,
    }
)
# States in which the instance holds its GPUs and is billed at the running price.
BILLED_STATES = frozenset({State.RUNNING, State.REBOOTING})

NAME_MAX_LENGTH = 63
NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
NAME_HELP = (
    "1–63 lower-case letters, digits and hyphens, starting and ending with a letter or digit "
    "(it becomes the machine's host name)."
)
name_validator = RegexValidator(NAME_PATTERN, NAME_HELP)


def login_user(ssh_user: str) -> str:
    """The user to log in as: the backend's, or the image's ("ubuntu")."""
    return ssh_user or "ubuntu"


def ssh_command(ip: str | None, ssh_port: int | None, ssh_user: str) -> str:
    """`ssh [-p port] user@ip`, or "" while the machine has no address."""
    if not ip:
        return ""
    port = f"-p {ssh_port} " if ssh_port and ssh_port != 22 else ""
    return f"ssh {port}{login_user(ssh_user)}@{ip}"


class Instance(models.Model):
    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.PROTECT, related_name="instances"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    name = models.CharField(max_length=NAME_MAX_LENGTH, validators=[name_validator])
    instance_type = models.ForeignKey(
        "catalog.InstanceType", on_delete=models.PROTECT, related_name="instances"
    )
    region = models.ForeignKey("catalog.Region", on_delete=models.PROTECT, related_name="instances")
    image = models.ForeignKey("catalog.Image", on_delete=models.PROTECT, related_name="instances")
    preemptible = models.BooleanField(default=False)
    max_price_per_hour = UnitPriceField(
        null=True,
        blank=True,
        help_text="A preemptible bid: the most it pays per hour (empty: the on-demand price).",
    )
    gpus = models.PositiveSmallIntegerField(help_text="GPUs of the instance type at launch.")
    # What the backend was given: [{"name", "fingerprint", "public_key"}], kept as launched even
    # if the keys are later deleted.
    ssh_keys = models.JSONField(default=list, blank=True)

    # The idempotency key towards the backend: `create` with the same request id never makes a
    # second machine, and reconciliation adopts an orphan whose request id matches.
    request_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The launch form's hidden token: a double submit finds the instance the first one made.
    idempotency_key = models.UUIDField(null=True, blank=True, editable=False)
    # The launching request's log context (request id, organization, user): the task that
    # provisions several launches together writes each one's lines under its own request.
    log_context = models.JSONField(default=dict, blank=True, editable=False)
    backend_id = models.CharField(max_length=128, blank=True, default="")

    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    state_reason = models.CharField(max_length=500, blank=True)
    state_changed_at = models.DateTimeField(default=timezone.now)
    ip = models.GenericIPAddressField(null=True, blank=True)
    # Where the SSH server listens when the backend says (the slurm driver runs it on a port of
    # its node as its own user); empty means port 22 and the image's user, "ubuntu".
    ssh_port = models.PositiveIntegerField("SSH port", null=True, blank=True)
    ssh_user = models.CharField("SSH user", max_length=64, blank=True, default="")
    # Whether the SSH user has sudo, as the backend says (None: it did not say).
    ssh_sudo = models.BooleanField("SSH user has sudo", null=True, blank=True)
    reclaim_at = models.DateTimeField(
        null=True, blank=True, help_text="When the operator takes a preemptible instance back."
    )
    reclaim_notified_at = models.DateTimeField(null=True, blank=True)
    reclaim_risk_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Since when a reclaim is forecast to be likely soon (cleared when it passes).",
    )
    stop_at = models.DateTimeField(
        "stops at",
        null=True,
        blank=True,
        help_text="When Backfill stops it for a rule of the organization's (a budget's hard "
        "limit), announced with the reclaim notice; cleared if the rule no longer holds.",
    )
    stop_reason = models.CharField(max_length=300, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    launched_at = models.DateTimeField(
        null=True, blank=True, help_text="When the backend accepted the machine."
    )
    running_since = models.DateTimeField(
        null=True, blank=True, help_text="Start of the current billed (running) period."
    )
    running_seconds = models.PositiveBigIntegerField(
        default=0, help_text="Billed seconds of the periods that have ended."
    )
    terminated_at = models.DateTimeField(
        null=True, blank=True, help_text="When the instance reached a final state."
    )
    quota_released_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the backend last told us about this machine (to within 5 minutes while "
        "nothing changes).",
    )
    # A node of a cluster (portal.clusters, a layer above: an id, not a foreign key). Such an
    # instance is launched, driven, stopped and ended with its cluster, by the cluster's task,
    # never on its own.
    cluster_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)
    node_index = models.PositiveSmallIntegerField(null=True, blank=True)
    private_ip = models.GenericIPAddressField(
        "private address", null=True, blank=True, help_text="On the cluster's own network."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # An organization's instances newest first (its list, the dashboard's recent
            # rows): the id breaks ties, so a first page reads its rows and stops even where
            # many share a creation time (a cluster's nodes are created together).
            models.Index(fields=["organization", "-created_at", "-id"], name="instance_org_newest"),
            # The dashboard's figures (instances running, in transition, stopped; GPUs
            # running) from the organization's entries alone: beside thousands of running
            # instances elsewhere, each figure read the whole fleet's entries of its state.
            models.Index(
                fields=["organization", "state"], include=["gpus"], name="instance_org_state"
            ),
            # The admin's list across organizations (ordering: newest first): a first page
            # without sorting the whole fleet.
            models.Index(fields=["-created_at", "-id"], name="instance_created"),
            models.Index(fields=["state"], name="instance_state"),
            models.Index(fields=["backend_id"], name="instance_backend_id"),
            # The admin's list filtered by state (and region), newest first: its count and
            # first page read the matching entries only (migration 0013, built concurrently).
            models.Index(
                fields=["state", "region", "-created_at", "-id"], name="instance_state_region"
            ),
            # The overview's failures of the last 24 hours, latest first.
            models.Index(fields=["state", "-state_changed_at"], name="instance_state_changed"),
            # The overview's GPUs sold per place: the live instances' GPUs summed from the
            # index alone, not the whole fleet's rows.
            models.Index(
                fields=["region", "instance_type", "preemptible"],
                include=["gpus"],
                condition=~Q(state__in=["terminated", "failed", "interrupted"]),
                name="instance_live_place",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"],
                condition=~Q(state__in=["terminated", "failed", "interrupted"]),
                name="instance_name_unique_while_alive",
            ),
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"],
                name="instance_one_per_launch_form",
            ),
            models.UniqueConstraint(
                fields=["backend_id"],
                condition=~Q(backend_id=""),
                name="instance_one_per_backend_machine",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def in_cluster(self) -> bool:
        return self.cluster_id is not None

    @property
    def is_transitional(self) -> bool:
        return self.state in TRANSITIONAL_STATES

    @property
    def reclaim_pending(self) -> bool:
        return self.reclaim_at is not None and not self.is_final

    @property
    def stop_pending(self) -> bool:
        return self.stop_at is not None and self.state == State.RUNNING

    @property
    def pending_stop_at(self) -> datetime | None:
        return self.stop_at if self.stop_pending else None

    @property
    def needs_watching(self) -> bool:
        """Whether the console should poll: in transition, or a reclaim or stop is on its way."""
        return self.is_transitional or self.reclaim_pending or self.stop_pending

    @property
    def ssh_command(self) -> str:
        return ssh_command(self.ip, self.ssh_port, self.ssh_user)

    @property
    def login_user(self) -> str:
        """The user to log in as: the backend's, or the image's ("ubuntu")."""
        return login_user(self.ssh_user)

    def billed_seconds(self, at=None) -> int:
        """Seconds billed at the running price up to `at` (default now)."""
        seconds = self.running_seconds
        if self.running_since is not None:
            seconds += max(0, int(((at or timezone.now()) - self.running_since).total_seconds()))
        return seconds


class InstanceEvent(models.Model):
    """One line of an instance's timeline: a state change or a notable fact (reclaim notice)."""

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    from_state = models.CharField(max_length=16, choices=State.choices, blank=True)
    to_state = models.CharField(max_length=16, choices=State.choices, blank=True)
    message = models.CharField(max_length=500, blank=True)
    # Null for Backfill itself (tasks, reconciliation).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        if self.to_state:
            return f"{self.instance}: {self.from_state or '—'} → {self.to_state}"
        return f"{self.instance}: {self.message}"
