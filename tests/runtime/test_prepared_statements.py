"""PostgreSQL plans a query the portal runs again and again once per connection, not each time
(server-side binding and psycopg's prepared statements, DATABASE_PREPARE_THRESHOLD)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from portal.catalog.models import Region

ROOT = Path(__file__).resolve().parents[2]
READ_BACK = (
    "import django, json; django.setup(); from django.conf import settings; "
    "print(json.dumps(settings.DATABASES['default'].get('OPTIONS', {})))"
)


def active_regions_by_name_descending() -> list[str]:
    """A read of a shape no other code runs, so its prepared statement is this test's."""
    found = Region.objects.filter(code="us-east-1", active=True).order_by("-name")
    return list(found.values_list("code", flat=True))


def prepared_reads_of_active_regions() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [s for (s,) in cursor.fetchall() if 'ORDER BY "catalog_region"."name" DESC' in s]


def database_options(threshold: str) -> subprocess.CompletedProcess:
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.base",
        "DATABASE_URL": "postgres://nobody@127.0.0.1:5432/nothing",
        "DATABASE_PREPARE_THRESHOLD": threshold,
    }
    return subprocess.run(
        [sys.executable, "-c", READ_BACK],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.django_db
def test_a_query_run_a_third_time_on_a_connection_is_prepared_and_answers_the_same():
    Region.objects.create(code="us-east-1", name="US East")
    answers = [active_regions_by_name_descending() for _ in range(2)]
    assert prepared_reads_of_active_regions() == []

    answers.append(active_regions_by_name_descending())

    assert len(prepared_reads_of_active_regions()) == 1
    assert answers == [["us-east-1"]] * 3


def test_prepared_statements_are_on_by_default_and_off_for_a_transaction_pooler():
    default = database_options("")
    off = database_options("off")

    assert default.returncode == 0, default.stderr[-2000:]
    assert json.loads(default.stdout) == {"server_side_binding": True, "prepare_threshold": 2}
    assert off.returncode == 0, off.stderr[-2000:]
    assert json.loads(off.stdout) == {}


def test_a_threshold_that_is_not_a_number_refuses_to_start_and_says_what_is_allowed():
    result = database_options("often")

    assert result.returncode != 0
    assert "DATABASE_PREPARE_THRESHOLD is 'often': a number of runs (2) or off" in result.stderr
