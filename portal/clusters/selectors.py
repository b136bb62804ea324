"""Reads of clusters, always scoped to an organization the caller belongs to."""

from __future__ import annotations

from django.db.models import QuerySet

from portal.clusters.models import FINAL_STATES, Cluster, ClusterEvent
from portal.instances.models import Instance
from portal.orgs.models import Organization
from portal.volumes.models import Volume
from portal.volumes.selectors import volume_attachment_list_for_instance


def cluster_list_for_organization(*, organization: Organization) -> QuerySet[Cluster]:
    return Cluster.objects.filter(organization=organization).select_related(
        "instance_type", "region", "image"
    )


def cluster_get_for_organization(*, organization: Organization, pk: int) -> Cluster | None:
    """The cluster, or None if it is not this organization's (the caller answers 404)."""
    return cluster_list_for_organization(organization=organization).filter(pk=pk).first()


def cluster_nodes_for_cluster(*, cluster: Cluster) -> QuerySet[Instance]:
    """The nodes in node order, head first."""
    return (
        Instance.objects.filter(cluster_id=cluster.pk)
        .select_related("instance_type", "region")
        .order_by("node_index")
    )


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
    return [a.volume for a in volume_attachment_list_for_instance(instance_id=head.pk)]
