"""Reclaims: the instances app's catalog and simulator, staff, a webhook endpoint."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portal.instances.models import State
from portal.webhooks.models import EventType
from portal.webhooks.services import webhook_endpoint_create
from tests.operations.conftest import (  # noqa: F401
    catalog,
    eager,
    launch,
    make_instance,
    quota,
    simulator,
    simulator_process,
    ssh_key,
    staff,
)


@pytest.fixture
def short_notice(settings):
    """A minimum and policy notice of 2 s, so that tests can wait a notice out."""
    settings.RECLAIM_MIN_NOTICE_SECONDS = 2
    from portal.reclaims.models import ReclaimPolicy

    ReclaimPolicy.objects.update_or_create(pk=1, defaults={"notice_seconds": 2})
    return 2


@pytest.fixture
def endpoint(team):
    return webhook_endpoint_create(
        membership=team.owner,
        url="https://hooks.example.com/backfill",
        event_types=list(EventType.values),
    )


@pytest.fixture
def spot(make_instance, catalog):  # noqa: F811
    """`spot(bid=None, launched_minutes_ago=10, **fields)`: a running preemptible instance."""

    def make(bid=None, launched_minutes_ago=10, state=State.RUNNING, **fields):
        launched = timezone.now() - timedelta(minutes=launched_minutes_ago)
        return make_instance(
            state,
            preemptible=True,
            max_price_per_hour=Decimal(bid) if bid is not None else None,
            launched_at=launched,
            **fields,
        )

    return make


def store_snapshot(capacities):
    """Store a capacity report as the periodic task does; its receivers run at the commit."""
    from django.test import TestCase

    from portal.capacity.snapshot import snapshot_store

    with TestCase.captureOnCommitCallbacks(execute=True):
        return snapshot_store(capacities=capacities, marker=None)
