"""Fixtures for volume tests: the instance tests' catalog, quota and simulator, storage quota,
and a volume made on the simulator by its task."""

import pytest
from django.core import mail

from portal.quotas.models import Kind
from portal.quotas.services import quota_limit_set
from portal.volumes import services
from portal.volumes.models import State, Volume
from tests.instances.conftest import (  # noqa: F401, F811  (fixtures)
    catalog,
    eager,
    launch,
    make_instance,
    quota,
    simulator,
    simulator_process,
    ssh_key,
)


def set_storage(organization, region, gb: int) -> None:
    quota_limit_set(
        organization=organization,
        region=region,
        gpu_model=None,
        kind=Kind.STORAGE,
        limit=gb,
        reason="test",
    )


@pytest.fixture
def storage(team, catalog):  # noqa: F811
    """1000 GB of storage in us-east-1 and 200 GB in eu-west-1."""
    set_storage(team.organization, catalog.us_east, 1000)
    set_storage(team.organization, catalog.eu_west, 200)


@pytest.fixture
def make_volume(team, catalog, storage, simulator, eager, django_capture_on_commit_callbacks):  # noqa: F811
    """`make_volume(name, size_gb=100, region=...)`: created by the member and made on the
    simulator by its task; returns it available."""

    def make(name: str = "datasets", size_gb: int = 100, region=None, membership=None) -> Volume:
        with django_capture_on_commit_callbacks(execute=True):
            volume = services.volume_create(
                membership=membership or team.member,
                region=region or catalog.us_east,
                name=name,
                size_gb=size_gb,
            )
        volume.refresh_from_db()
        assert volume.state == State.AVAILABLE, volume.detail
        mail.outbox.clear()
        return volume

    return make
