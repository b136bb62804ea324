"""The cluster e-mails (one per cluster, never one per node); templates in
templates/emails/cluster_<kind>/."""

from django.conf import settings
from django.urls import reverse

from portal.clusters.models import Cluster
from portal.instances.emails import recipients
from portal.notifications.registry import Email, email_kind


def _email(template: str, cluster_id: int) -> list[Email]:
    cluster = Cluster.objects.select_related(
        "organization", "created_by", "instance_type", "region", "image"
    ).get(pk=cluster_id)
    slug = cluster.organization.slug
    head = cluster.head()
    return [
        Email(
            template=template,
            to=recipients(cluster),  # type: ignore[arg-type]  # the same fields as an instance
            context={
                "cluster": cluster,
                "head": head,
                "organization": cluster.organization,
                "cluster_url": settings.SITE_URL
                + reverse("clusters:detail", args=[slug, cluster.pk]),
                "launch_url": settings.SITE_URL + reverse("clusters:launch", args=[slug]),
            },
        )
    ]


@email_kind("cluster_running", category="instances")
def cluster_running(*, cluster_id: int) -> list[Email]:
    return _email("cluster_running", cluster_id)


@email_kind("cluster_failed", category="instances")
def cluster_failed(*, cluster_id: int) -> list[Email]:
    return _email("cluster_failed", cluster_id)


@email_kind("cluster_interrupted")
def cluster_interrupted(*, cluster_id: int) -> list[Email]:
    return _email("cluster_interrupted", cluster_id)


@email_kind("cluster_reclaim_notice")
def cluster_reclaim_notice(*, cluster_id: int) -> list[Email]:
    return _email("cluster_reclaim_notice", cluster_id)
