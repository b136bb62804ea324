"""A real worker keeps its database connection from one task to the next, as a web process
keeps it from one request to the next (CONN_MAX_AGE), instead of connecting anew per task."""

import time

import pytest
from django.db import connection

from portal.instances.models import State
from tests.instances.worker import CeleryWorker, purge_broker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def other_backends() -> set[int]:
    """PostgreSQL backends connected to the test database, other than this test's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return {pid for (pid,) in cursor.fetchall()}


def run_to_the_end(instance, worker) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        instance.refresh_from_db()
        if instance.state == State.RUNNING:
            time.sleep(1)  # the running e-mail task, queued on the transition's commit
            return
        time.sleep(0.2)
    raise AssertionError(f"{instance.name} is {instance.state}\n{worker.log()}")


def test_a_worker_uses_one_database_connection_for_task_after_task(simulator, launch, tmp_path):
    purge_broker()
    worker = CeleryWorker(
        tmp_path, simulator=simulator, extra_env={"TEST_WORKER_CONN_MAX_AGE": "60"}
    )
    worker.start()
    try:
        run_to_the_end(launch("first"), worker)
        after_first = other_backends()
        run_to_the_end(launch("second"), worker)
        after_second = other_backends()
    finally:
        worker.stop()

    # Still connected between tasks, and the same backend served the second launch's tasks.
    assert after_first, "the worker closed its connection after its tasks"
    assert after_first & after_second
