"""Fixtures for cluster tests: the instances' catalog, quota, keys and simulator, and a
`launch_cluster` with good defaults."""

import pytest

from portal.clusters import services
from portal.clusters.models import Cluster
from tests.api.conftest import api, api_as, token_for  # noqa: F401  the API's fixtures
from tests.instances.conftest import (  # noqa: F401  fixtures shared with the instance tests
    catalog,
    eager,
    launch,
    quota,
    simulator,
    simulator_process,
    ssh_key,
)
from tests.volumes.conftest import make_volume, storage  # noqa: F401  the volumes' fixtures


@pytest.fixture
def launch_cluster(team, catalog, quota, ssh_key):  # noqa: F811
    """`launch_cluster(name="train", nodes=2, **overrides)` as the member."""

    def do(name: str = "train", nodes: int | str = 2, **overrides) -> Cluster:
        arguments = {
            "membership": team.member,
            "name": name,
            "instance_type": catalog.h100_1x.code,
            "region": catalog.us_east.code,
            "image": catalog.ubuntu.code,
            "nodes": nodes,
            "ssh_key_ids": [ssh_key.pk],
            "preemptible": False,
            "idempotency_key": None,
            **overrides,
        }
        return services.cluster_launch(**arguments)

    return do


@pytest.fixture
def drive(eager, django_capture_on_commit_callbacks):  # noqa: F811
    """Run the cluster's task to completion here (its polls too), with on-commit e-mails."""
    from portal.clusters.tasks import cluster_drive

    def run(cluster: Cluster, step: str = "provision") -> Cluster:
        with django_capture_on_commit_callbacks(execute=True):
            cluster_drive.apply(args=[cluster.pk, step])
        cluster.refresh_from_db()
        return cluster

    return run
