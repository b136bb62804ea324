"""The storage quota: requested and decided like GPU limits, set by staff in the admin, and
volume changes as webhook events."""

import json

import pytest

from portal.quotas.models import Kind, Quota, QuotaRequestState
from portal.quotas.services import Decision, quota_request_decide, quota_request_submit
from portal.webhooks.models import WebhookDelivery
from portal.webhooks.services import webhook_endpoint_create
from tests.factories import UserFactory

pytestmark = pytest.mark.slow


@pytest.fixture
def endpoint(team, monkeypatch):
    monkeypatch.setattr("portal.webhooks.tasks.webhook_deliver.delay", lambda pk: None)
    endpoint, _secret = webhook_endpoint_create(
        membership=team.owner,
        url="https://hooks.example.com/b",
        event_types=["quota.decided", "volume.changed"],
    )
    return endpoint


def test_a_storage_request_partly_approved_by_staff_sets_the_limit(team, catalog, endpoint):
    request = quota_request_submit(
        membership=team.owner,
        region=catalog.us_east,
        gpu_model=None,
        kind=Kind.STORAGE,
        requested_limit=2000,
        justification="Checkpoints of a 70B model for two months.",
    )
    assert request.gpu_model is None and request.state == QuotaRequestState.SUBMITTED
    staff = UserFactory(is_staff=True)
    decided = quota_request_decide(
        quota_request=request,
        decision=Decision.APPROVE,
        granted_limit=1500,
        message="1.5 TB now.",
        decided_by=staff,
    )
    assert decided.state == QuotaRequestState.PARTLY_APPROVED
    row = Quota.objects.get(organization=team.organization, region=catalog.us_east, gpu_model=None)
    assert (row.storage_limit_gb, row.on_demand_limit) == (1500, 0)
    (delivery,) = WebhookDelivery.objects.filter(event_type="quota.decided")
    data = json.loads(delivery.body)["data"]["quota_request"]
    assert (data["gpu_model"], data["kind"], data["granted_limit"]) == (None, "storage", 1500)


def test_storage_request_bad_input(team, catalog):
    from portal.lib.errors import ApplicationError

    with pytest.raises(ApplicationError, match="at most 100000 GB"):
        quota_request_submit(
            membership=team.owner,
            region=catalog.us_east,
            gpu_model=None,
            kind=Kind.STORAGE,
            requested_limit=10**9,
            justification="x",
        )
    with pytest.raises(ApplicationError, match="already 0 GB"):
        quota_request_submit(
            membership=team.owner,
            region=catalog.us_east,
            gpu_model=None,
            kind=Kind.STORAGE,
            requested_limit=0,
            justification="x",
        )


def test_staff_set_a_storage_limit_in_the_admin(team, catalog, client):
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    response = client.post(
        "/admin/quotas/quota/add/",
        {
            "organization": team.organization.pk,
            "region": catalog.us_east.pk,
            "gpu_model": "",
            "on_demand_limit": "0",
            "preemptible_limit": "0",
            "storage_limit_gb": "750",
            "reason": "Pilot customer.",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    row = Quota.objects.get(organization=team.organization, gpu_model=None)
    assert row.storage_limit_gb == 750
    assert row.changes.get().new_limit == 750


def test_volume_changes_are_webhook_events(make_volume, endpoint):
    volume = make_volume("datasets")
    changes = [
        json.loads(d.body)["data"]["change"]
        for d in WebhookDelivery.objects.filter(event_type="volume.changed").order_by("pk")
    ]
    assert changes == ["created", "available"]
    last = json.loads(
        WebhookDelivery.objects.filter(event_type="volume.changed").order_by("pk").last().body
    )
    assert last["data"]["volume"]["mount_path"] == "/data/datasets"
    assert last["data"]["volume"]["id"] == volume.pk
