"""Concurrent launches can never exceed a limit together (PostgreSQL row locks, real threads)."""

import threading

import pytest
from django.db import connection

from portal.quotas.models import Quota
from portal.quotas.services import QuotaExceeded, quota_reserve

THREADS = 50
LIMIT = 8


@pytest.mark.django_db(transaction=True)
def test_fifty_threads_reserving_one_gpu_each_against_a_limit_of_eight(
    team, gpu_catalog, set_limit
):
    assert connection.vendor == "postgresql"
    set_limit(LIMIT)
    start = threading.Barrier(THREADS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def launch() -> None:
        try:
            start.wait(timeout=30)
            try:
                quota_reserve(
                    organization=team.organization,
                    region=gpu_catalog.us_east,
                    gpu_model=gpu_catalog.h100,
                    gpus=1,
                    preemptible=False,
                )
                outcome = "reserved"
            except QuotaExceeded:
                outcome = "refused"
            except Exception as error:  # anything else fails the test below
                outcome = f"error: {error!r}"
            with lock:
                outcomes.append(outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=launch) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not any(t.is_alive() for t in threads)
    assert sorted(set(outcomes)) == ["refused", "reserved"], outcomes
    assert outcomes.count("reserved") == LIMIT
    assert outcomes.count("refused") == THREADS - LIMIT
    quota = Quota.objects.get(organization=team.organization)
    assert quota.on_demand_used == LIMIT
    assert quota.preemptible_used == 0
