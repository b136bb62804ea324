"""Volumes on clusters: every node mounts them; they outlive the cluster; bad choices change
nothing."""

import pytest

from portal.clusters import services
from portal.clusters.models import Cluster, State
from portal.instances.models import Instance
from portal.lib.errors import ApplicationError
from portal.volumes.models import State as VolumeState
from tests.instances.conftest import machines_of
from tests.volumes.conftest import set_storage

pytestmark = pytest.mark.slow


def test_every_node_mounts_the_volume_and_it_outlives_the_cluster(
    simulator, launch_cluster, make_volume, drive, team
):
    volume = make_volume("datasets", size_gb=100)

    cluster = drive(launch_cluster("llm", nodes=2, volume_ids=[volume.pk]))

    assert cluster.state == State.RUNNING
    assert {tuple(m["volumes"]) for m in machines_of(simulator)} == {(volume.backend_id,)}
    assert [a.instance_name for a in volume.attachments.order_by("instance_name")] == [
        "llm-0",
        "llm-1",
    ]

    services.cluster_action(
        membership=team.member, cluster=cluster, action="terminate", confirm_name="llm"
    )
    cluster = drive(cluster, "act")

    assert cluster.state == State.TERMINATED
    volume.refresh_from_db()
    assert volume.state == VolumeState.AVAILABLE
    assert not volume.attachments.filter(detached_at__isnull=True).exists()
    backend_volume = next(
        v for v in simulator.control.state()["volumes"] if v["id"] == volume.backend_id
    )
    assert backend_volume["state"] == "available"


def test_a_volume_of_another_region_is_refused_and_nothing_is_written(
    simulator, launch_cluster, make_volume, team, catalog
):
    set_storage(team.organization, catalog.eu_west, 500)
    volume = make_volume("eu-data", size_gb=10, region=catalog.eu_west)

    with pytest.raises(ApplicationError, match="is in eu-west-1") as refused:
        launch_cluster(volume_ids=[volume.pk])

    assert refused.value.field == "volumes"
    assert not Cluster.objects.exists() and not Instance.objects.exists()


def test_another_organizations_volume_is_no_such_volume(
    simulator, launch_cluster, make_volume, outsider, catalog
):
    from tests.volumes.conftest import set_storage as storage_for

    storage_for(outsider.organization, catalog.us_east, 100)
    theirs = make_volume("theirs", size_gb=10, membership=outsider)

    with pytest.raises(ApplicationError, match=f"no volume #{theirs.pk} in this organization"):
        launch_cluster(volume_ids=[theirs.pk])

    assert not Cluster.objects.exists()


def test_a_cloud_that_does_not_share_volumes_refuses_them_on_a_cluster(
    simulator, launch_cluster, make_volume, settings
):
    volume = make_volume()
    settings.VOLUMES_SHARED = False

    with pytest.raises(ApplicationError, match="nodes of a cluster cannot share one"):
        launch_cluster(volume_ids=[volume.pk])

    assert not Cluster.objects.exists()
    assert not volume.attachments.exists()
