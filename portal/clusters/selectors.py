"""Reads of clusters, always scoped to an organization the caller belongs to."""

from __future__ import annotations

from typing import NamedTuple

from django.db.models import QuerySet

from portal.clusters.models import FINAL_STATES, Cluster, ClusterEvent
from portal.instances.models import TRANSITIONAL_STATES, Instance, ssh_command
from portal.orgs.models import Organization
from portal.volumes.models import Volume
from portal.volumes.selectors import volume_attachment_list_for_instance
from portal.web.sql import ReadBuiltOnce


def cluster_list_for_organization(*, organization: Organization) -> QuerySet[Cluster]:
    return Cluster.objects.filter(organization=organization).select_related(
        "instance_type", "region", "image"
    )


def cluster_get_for_organization(*, organization: Organization, pk: int) -> Cluster | None:
    """The cluster, or None if it is not this organization's (the caller answers 404)."""
    clusters = cluster_list_for_organization(organization=organization)
    return clusters.select_related("created_by").filter(pk=pk).first()


def cluster_nodes_for_cluster(*, cluster: Cluster) -> QuerySet[Instance]:
    """The nodes in node order, head first."""
    return (
        Instance.objects.filter(cluster_id=cluster.pk)
        .select_related("instance_type", "region")
        .order_by("node_index")
    )


class NodeRow(NamedTuple):
    """A node as the cluster page shows it: its row of the nodes table, and the head's SSH
    command (the page reads no more of an instance, and a cluster may have 1,000 nodes)."""

    pk: int
    name: str
    node_index: int | None
    state: str
    private_ip: str | None
    ip: str | None
    backend_id: str
    ssh_port: int | None
    ssh_user: str

    @property
    def is_transitional(self) -> bool:
        return self.state in TRANSITIONAL_STATES

    @property
    def ssh_command(self) -> str:
        return ssh_command(self.ip, self.ssh_port, self.ssh_user)


def _node_rows(cluster: int) -> QuerySet[Instance, tuple]:
    return (
        Instance.objects.filter(cluster_id=cluster)
        .order_by("node_index")
        .values_list(*NodeRow._fields)
    )


_NODE_ROWS = ReadBuiltOnce(_node_rows, cluster=int)


def cluster_node_rows_for_cluster(*, cluster: Cluster) -> list[NodeRow]:
    """The nodes in node order, head first, as the cluster page's rows."""
    return [NodeRow(*row) for row in _NODE_ROWS.rows(cluster=cluster.pk)]


def cluster_events_for_cluster(*, cluster: Cluster) -> QuerySet[ClusterEvent]:
    return cluster.events.select_related("actor").order_by("at", "id")


def cluster_instance_ids_for_cluster(*, cluster: Cluster) -> list[int]:
    """The instances a cluster is made of: reclaim orders treat them as one victim."""
    return list(Instance.objects.filter(cluster_id=cluster.pk).values_list("pk", flat=True))


def cluster_get_for_instance(*, instance: Instance) -> Cluster | None:
    """The cluster an instance is a node of (None for a single instance)."""
    if instance.cluster_id is None:
        return None
    return Cluster.objects.filter(pk=instance.cluster_id).first()


def cluster_list_alive_for_organization(*, organization: Organization) -> QuerySet[Cluster]:
    return cluster_list_for_organization(organization=organization).exclude(state__in=FINAL_STATES)


def cluster_volume_list_for_cluster(*, cluster: Cluster) -> list[Volume]:
    """The volumes the cluster was launched with (every node mounts them)."""
    head = Instance.objects.filter(cluster_id=cluster.pk, node_index=0).only("pk").first()
    if head is None:
        return []
    return cluster_volume_list_for_head(head_id=head.pk)


def cluster_volume_list_for_head(*, head_id: int) -> list[Volume]:
    """The cluster's volumes, from its head node's attachments (every node has the same)."""
    return [a.volume for a in volume_attachment_list_for_instance(instance_id=head_id)]
