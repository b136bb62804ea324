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
    # The admin needs two-factor: the demo operator is sent to set it up first.
    assert client.get("/admin/")["Location"] == "/accounts/2fa/"


def test_running_it_again_changes_nothing_that_exists(seeded):
    """`make run` seeds on every start: what staff or the demo customer changed stays."""
    from portal.catalog.models import Image, InstanceType, Region
    from portal.orgs.models import Organization
    from portal.quotas.models import AutoApprovalRule, Quota, QuotaDefault

    organization = Organization.objects.get(slug="acme-ai")
    quota = Quota.objects.get(
        organization=organization, region__code="us-east-1", gpu_model__code="h100"
    )
    Quota.objects.filter(pk=quota.pk).update(on_demand_limit=2, preemptible_limit=32)
    Region.objects.filter(code="eu-west-1").update(name="EU West (renamed)", active=False)
    InstanceType.objects.filter(code="gpu_1x_l40s").update(active=False, vcpus=99)
    Image.objects.filter(code="ubuntu-22.04-cuda-12.4").update(active=False)
    QuotaDefault.objects.filter(gpu_model__code="l40s").update(on_demand_limit=7)
    AutoApprovalRule.objects.update(max_limit=3)
    organization.name = "Acme renamed"
    organization.save(update_fields=["name"])

    call_command("seed_demo", stdout=StringIO())

    quota.refresh_from_db()
    assert (quota.on_demand_limit, quota.preemptible_limit) == (2, 32)
    region = Region.objects.get(code="eu-west-1")
    assert (region.name, region.active) == ("EU West (renamed)", False)
    assert InstanceType.objects.filter(code="gpu_1x_l40s", active=False, vcpus=99).exists()
    assert not Image.objects.get(code="ubuntu-22.04-cuda-12.4").active
    assert set(
        QuotaDefault.objects.filter(gpu_model__code="l40s").values_list(
            "on_demand_limit", flat=True
        )
    ) == {7}
    assert set(AutoApprovalRule.objects.values_list("max_limit", flat=True)) == {3}
    assert Organization.objects.get(slug="acme-ai").name == "Acme renamed"


def test_what_is_missing_is_created_again(seeded):
    from portal.catalog.models import Image

    Image.objects.filter(code="pytorch-2.5-cuda-12.4").delete()

    call_command("seed_demo", stdout=StringIO())

    assert Image.objects.filter(code="pytorch-2.5-cuda-12.4", active=True).exists()
