"""Reclaims against the real simulator, tasks run in-process: the backend's shortfall becomes
an order, the machine learns its time from its metadata, ends at it, and the order closes."""

import time
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from portal.instances import sync, tasks
from portal.instances.models import State
from portal.reclaims import services
from portal.reclaims.models import OrderState, ReclaimOrder, Source


@pytest.fixture
def running(launch, eager, django_capture_on_commit_callbacks):
    def make(name, **overrides):
        instance = launch(name, **overrides)
        with django_capture_on_commit_callbacks(execute=True):
            tasks.instance_provision.apply(args=[instance.pk])
        instance.refresh_from_db()
        assert instance.state == State.RUNNING
        return instance

    return make


def test_a_backend_shortfall_becomes_an_order_and_the_victim_ends_at_its_time(
    simulator, running, short_notice, eager, django_capture_on_commit_callbacks
):
    on_demand = running("serving")
    spot = running("spot-1", preemptible=True)
    mail.outbox.clear()
    # The operator's own work wants the whole region: 64 GPUs, 2 held by customers.
    simulator.control.set_demand(
        curves=[{"region": "us-east-1", "gpu_model": "H100 80GB", "gpus": 64}]
    )
    with django_capture_on_commit_callbacks(execute=True):
        sync.capacity_refresh()
        sync.capacity_refresh()  # the same demand reported again: no second order

    (order,) = ReclaimOrder.objects.all()
    assert (order.source, order.gpus, order.returnable_gpus) == (Source.BACKEND, 2, 1)
    assert "it can return only 1 GPUs (1 short)" in order.summary
    spot.refresh_from_db()
    assert spot.reclaim_at == order.end_at
    # The machine's processes read the time from its metadata during the notice.
    notice = simulator.control.interruption(spot.backend_id)
    assert notice is not None
    assert notice["time"].startswith(f"{spot.reclaim_at:%Y-%m-%dT%H:%M:%S}")
    assert [m.subject for m in mail.outbox if "interrupted at" in m.subject]

    time.sleep(max(0.0, (spot.reclaim_at - timezone.now()).total_seconds()) + 0.3)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.instance_poll.apply(args=[spot.pk])
    spot.refresh_from_db()
    on_demand.refresh_from_db()
    assert spot.state == State.INTERRUPTED
    assert spot.terminated_at == spot.reclaim_at  # billing stops at that second
    assert on_demand.state == State.RUNNING
    order.refresh_from_db()
    assert order.state == OrderState.DONE
    assert order.met is True
    assert order.freed_at == spot.reclaim_at
    assert simulator.control.interruption(spot.backend_id) is None
    demand = simulator.control.demand()["now"][0]
    assert demand["internal_gpus"] == 63  # the internal work took the GPU back


def test_a_staff_order_through_the_backend(
    simulator, running, short_notice, eager, staff, catalog, django_capture_on_commit_callbacks
):
    spot = running("spot-1", preemptible=True)
    with django_capture_on_commit_callbacks(execute=True):
        order = services.reclaim_order_create(
            region="us-east-1",
            gpu_model="h100",
            gpus=1,
            deadline=timezone.now() + timedelta(seconds=3),
            by=staff,
        )
    victim = order.victims.get()
    assert victim.backend_told_at is not None
    assert simulator.control.interruption(spot.backend_id)["action"] == "terminate"
