"""A cluster is billed per node-second, on a line of its own per type and region."""

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.billing import rating
from portal.clusters.models import State
from portal.instances import tasks as instance_tasks

pytestmark = pytest.mark.slow


def test_the_nodes_of_clusters_are_one_invoice_line_next_to_the_instances(
    simulator, launch_cluster, launch, drive, team, django_capture_on_commit_callbacks
):
    cluster = drive(launch_cluster("llm", nodes=3))
    assert cluster.state == State.RUNNING
    single = launch("web-1")
    with django_capture_on_commit_callbacks(execute=True):
        instance_tasks.instance_provision.apply(args=[single.pk])

    start = timezone.now() - timedelta(days=1)
    now = timezone.now() + timedelta(hours=1)
    lines = rating.lines(
        organization_id=team.organization.pk, start=start, end=now + timedelta(days=1), now=now
    )

    assert [line.cluster for line in lines] == [False, True]
    instance_line, cluster_line = lines
    assert cluster_line.description == "Cluster nodes · 1x H100 80GB · us-east-1 · On-demand"
    assert instance_line.description == "1x H100 80GB · us-east-1 · On-demand"
    # Per node-second: three nodes for about an hour each, at the type's hourly price.
    assert 3 * 3600 <= cluster_line.seconds <= 3 * 3600 + 3 * 5
    assert 3600 <= instance_line.seconds <= 3600 + 5
    assert cluster_line.unit_price == instance_line.unit_price
