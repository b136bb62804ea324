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
    "options = settings.DATABASES['default'].get('OPTIONS', {}); "
    "print(json.dumps({k: getattr(v, '__qualname__', v) for k, v in options.items()}))"
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


@pytest.mark.django_db
def test_a_search_is_never_prepared_so_each_is_planned_for_its_own_pattern():
    """A prepared query may get one plan for any value; for a LIKE pattern PostgreSQL cannot
    see, that plan can read the whole instance table in page order (308 ms against 2 ms)."""
    Region.objects.create(code="us-east-1", name="US East")
    Region.objects.create(code="eu-west-1", name="EU West")

    found = [
        list(Region.objects.filter(name__icontains=term).values_list("code", flat=True))
        for term in ["east", "west", "EU", "us", "East", "nowhere", "w"]
    ]

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [statement for (statement,) in cursor.fetchall()]
    assert [statement for statement in prepared if "LIKE" in statement] == []
    assert found == [
        ["us-east-1"],
        ["eu-west-1"],
        ["eu-west-1"],
        ["us-east-1"],
        ["us-east-1"],
        [],
        ["eu-west-1"],
    ]


def test_prepared_statements_are_on_by_default_and_off_for_a_transaction_pooler():
    default = database_options("")
    off = database_options("off")

    assert default.returncode == 0, default.stderr[-2000:]
    assert json.loads(default.stdout) == {
        "server_side_binding": True,
        "cursor_factory": "PreparingCursor",
        "prepare_threshold": 2,
    }
    assert off.returncode == 0, off.stderr[-2000:]
    assert json.loads(off.stdout) == {}


def test_a_threshold_that_is_not_a_number_refuses_to_start_and_says_what_is_allowed():
    result = database_options("often")

    assert result.returncode != 0
    assert "DATABASE_PREPARE_THRESHOLD is 'often': a number of runs (2) or off" in result.stderr
