"""Clusters: N nodes of one instance type in one region, on one fabric, as one.

Each node is an `instances.Instance` whose `cluster_id` is the cluster's id (the instances app
is a layer below and knows the id only): the nodes are metered, billed, reconciled and shown
like any machine, but launched, driven and ended with their cluster by `portal.clusters.sync`.
The cluster's own state follows its nodes (`lifecycle.settle`).
"""

import re
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from portal.instances.models import Instance


class State(models.TextChoices):
    PENDING = "pending", "Pending"
    PROVISIONING = "provisioning", "Provisioning"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    STARTING = "starting", "Starting"
    TERMINATING = "terminating", "Terminating"
    TERMINATED = "terminated", "Terminated"
    FAILED = "failed", "Failed"
    INTERRUPTED = "interrupted", "Interrupted"


FINAL_STATES = frozenset({State.TERMINATED, State.FAILED, State.INTERRUPTED})
TRANSITIONAL_STATES = frozenset(
    {State.PENDING, State.PROVISIONING, State.STOPPING, State.STARTING, State.TERMINATING}
)

# Node names are `<cluster>-<index>` and must stay valid instance names (at most 63).
NAME_MAX_LENGTH = 57
NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,55}[a-z0-9])?$")
NAME_HELP = (
    "1–57 lower-case letters, digits and hyphens, starting and ending with a letter or digit "
    "(its nodes are named after it: train-0, train-1, …)."
)


class Cluster(models.Model):
    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.PROTECT, related_name="clusters"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    instance_type = models.ForeignKey(
        "catalog.InstanceType", on_delete=models.PROTECT, related_name="clusters"
    )
    region = models.ForeignKey("catalog.Region", on_delete=models.PROTECT, related_name="clusters")
    image = models.ForeignKey("catalog.Image", on_delete=models.PROTECT, related_name="clusters")
    node_count = models.PositiveSmallIntegerField("nodes")
    preemptible = models.BooleanField(default=False)
    gpus_per_node = models.PositiveSmallIntegerField()
    # As launched: [{"name", "fingerprint", "public_key"}].
    ssh_keys = models.JSONField(default=list, blank=True)

    # The idempotency key of `cluster_create`; node i's is cluster_node_request_id(it, i).
    request_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    idempotency_key = models.UUIDField(null=True, blank=True, editable=False)

    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    state_reason = models.CharField(max_length=500, blank=True)
    state_changed_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    launched_at = models.DateTimeField(
        null=True, blank=True, help_text="When the backend placed all the nodes."
    )
    terminated_at = models.DateTimeField(null=True, blank=True)
    # A preemptible cluster is reclaimed whole: the first node's notice is the cluster's.
    reclaim_at = models.DateTimeField(
        null=True, blank=True, help_text="When the operator takes the preemptible cluster back."
    )
    reclaim_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="cluster_org_created"),
            models.Index(fields=["state"], name="cluster_state"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"],
                condition=~Q(state__in=["terminated", "failed", "interrupted"]),
                name="cluster_name_unique_while_alive",
            ),
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"], name="cluster_one_per_launch_form"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def is_transitional(self) -> bool:
        return self.state in TRANSITIONAL_STATES

    @property
    def reclaim_pending(self) -> bool:
        return self.reclaim_at is not None and not self.is_final

    @property
    def gpus(self) -> int:
        return self.node_count * self.gpus_per_node

    @property
    def nodes(self) -> models.QuerySet[Instance]:
        """The cluster's nodes in node order (head first)."""
        return Instance.objects.filter(cluster_id=self.pk).order_by("node_index")

    def head(self) -> Instance | None:
        return self.nodes.filter(node_index=0).first()


class ClusterEvent(models.Model):
    """One line of a cluster's timeline."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    from_state = models.CharField(max_length=16, choices=State.choices, blank=True)
    to_state = models.CharField(max_length=16, choices=State.choices, blank=True)
    message = models.CharField(max_length=500, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.cluster}: {self.from_state or '—'} → {self.to_state or '·'}"
