"""`manage.py seed_demo`: demo data that can be loaded again without duplicates."""

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command

from portal.demo.management.commands import seed_demo

pytestmark = pytest.mark.django_db


def row_counts() -> dict[str, int]:
    return {model._meta.label: model.objects.count() for model in apps.get_models()}


@pytest.fixture
def seeded():
    call_command("seed_demo", stdout=StringIO())


def test_running_it_twice_creates_nothing_more(seeded):
    first = row_counts()

    call_command("seed_demo", stdout=StringIO())

    assert row_counts() == first
    assert first["accounts.User"] == 2
    assert first["catalog.InstanceType"] > 0


def test_the_demo_customer_logs_in_to_their_organization(seeded, client):
    client.post(
        "/accounts/login/",
        {"login": seed_demo.CUSTOMER_EMAIL, "password": seed_demo.CUSTOMER_PASSWORD},
    )

    assert client.get("/dashboard/")["Location"] == "/o/acme-ai/"
    assert client.get("/o/acme-ai/").status_code == 200


def test_the_operator_logs_in_to_the_admin(seeded, client):
    response = client.post(
        "/accounts/login/?next=/admin/",
        {"login": seed_demo.ADMIN_EMAIL, "password": seed_demo.ADMIN_PASSWORD},
    )

    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
