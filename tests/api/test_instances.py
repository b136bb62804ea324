"""/instances/: list, launch, get, events and actions, through portal.instances' services."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.api.models import Scope
from portal.instances.models import Instance, State
from portal.quotas.models import Quota
from tests.api.conftest import assert_error
from tests.factories import MembershipFactory
from tests.sshkeys.factories import SshKeyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def body(catalog, ssh_key):
    return {
        "name": "train-1",
        "instance_type": catalog.h100_1x.code,
        "region": catalog.us_east.code,
        "image": catalog.ubuntu.code,
        "ssh_key_ids": [ssh_key.pk],
    }


def test_launch_records_a_pending_instance_and_enqueues_provisioning(
    team, api, body, quota, _no_broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/instances/", body)

    assert response.status_code == 201, response.content
    data = response.json()
    instance = Instance.objects.get()
    assert data["id"] == instance.pk
    assert data["state"] == "pending" and data["actions"] == ["terminate"]
    assert data["instance_type"] == "gpu_1x_h100" and data["gpu_model"] == "h100"
    assert data["region"] == "us-east-1" and data["preemptible"] is False
    assert data["hourly_price"] == "2.4900" and data["cost_so_far"] == "0.00"
    assert data["created_by"] == team.member.user.email
    assert data["ssh_keys"][0]["name"] == "laptop"
    assert _no_broker == [("provision", instance.pk)]
    assert (
        Quota.objects.get(
            organization=team.organization, region__code="us-east-1", gpu_model__code="h100"
        ).on_demand_used
        == 1
    )


@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        ({"region": "mars-1"}, 400, "unknown", "region"),
        ({"instance_type": "gpu_1x_nothing"}, 400, "unknown", "instance_type"),
        ({"image": "ubuntu-18.04"}, 400, "inactive", "image"),
        ({"name": "Not A Hostname"}, 400, "invalid", "name"),
        ({"instance_type": "gpu_1x_l40s"}, 400, "not_offered", "region"),
        ({"ssh_key_ids": [999999]}, 400, "not_found", "ssh_key_ids"),
    ],
)
def test_launch_refusals_name_the_field(api, body, quota, change, status, code, field):
    error = assert_error(api.post("/instances/", {**body, **change}), status, code)

    assert field in error["details"]
    assert not Instance.objects.exists()


def test_launch_over_the_quota_is_409_with_the_numbers(api, body, quota):
    big = {**body, "instance_type": "gpu_8x_h100", "preemptible": True}
    assert api.post("/instances/", big).status_code == 201  # 8 of 8 preemptible H100s

    error = assert_error(api.post("/instances/", {**big, "name": "two"}), 409, "quota_exceeded")

    details = error["details"]
    assert (details["limit"], details["used"], details["requested"]) == (8, 8, 8)
    assert (details["region"], details["gpu_model"], details["kind"]) == (
        "us-east-1",
        "h100",
        "preemptible",
    )
    assert details["request_url"].startswith("http://testserver/o/acme/quotas/requests/new/?")
    assert Instance.objects.count() == 1


def test_launch_with_another_organizations_key_is_refused(api, body, quota, outsider):
    theirs = SshKeyFactory(membership=outsider, shared=True)

    error = assert_error(api.post("/instances/", {**body, "ssh_key_ids": [theirs.pk]}), 400)

    assert "ssh_key_ids" in error["details"]
    assert not Instance.objects.exists()


def test_a_name_in_use_is_409(api, body, quota):
    assert api.post("/instances/", body).status_code == 201

    assert_error(api.post("/instances/", body), 409, "name_taken")
    assert Instance.objects.count() == 1


# Idempotency-Key


def test_the_same_key_and_body_twice_launch_once_and_answer_identically(api, body, quota):
    headers = {"Idempotency-Key": "9b2f0d0e-3f9a-4a61-8a1c-0d6c5e0f4b11"}

    first = api.post("/instances/", body, headers=headers)
    second = api.post("/instances/", body, headers=headers)

    assert first.status_code == second.status_code == 201
    assert first.content == second.content  # byte for byte
    assert "Idempotent-Replayed" not in first
    assert second["Idempotent-Replayed"] == "true"
    assert Instance.objects.count() == 1


def test_the_same_key_is_replayed_even_after_the_instance_changed(api, body, quota):
    headers = {"Idempotency-Key": "k-1"}
    first = api.post("/instances/", body, headers=headers)
    Instance.objects.update(state=State.RUNNING)

    second = api.post("/instances/", body, headers=headers)

    assert second.content == first.content and second.json()["state"] == "pending"


def test_the_same_key_with_another_body_is_409_and_launches_nothing(api, body, quota):
    headers = {"Idempotency-Key": "k-2"}
    assert api.post("/instances/", body, headers=headers).status_code == 201

    error = assert_error(
        api.post("/instances/", {**body, "name": "train-2"}, headers=headers),
        409,
        "idempotency_key_reused",
    )

    assert "different request" in error["message"]
    assert Instance.objects.count() == 1


def test_json_formatting_does_not_change_the_request(api, body, quota):
    headers = {"Idempotency-Key": "k-3"}
    import json

    first = api.post("/instances/", raw=json.dumps(body), headers=headers)
    second = api.post(
        "/instances/", raw=json.dumps(dict(reversed(body.items())), indent=4), headers=headers
    )

    assert second.status_code == 201 and second.content == first.content
    assert Instance.objects.count() == 1


def test_keys_are_per_token(team, api, api_as, body, quota):
    headers = {"Idempotency-Key": "shared-key"}
    assert api.post("/instances/", body, headers=headers).status_code == 201

    other = api_as(team.admin).post("/instances/", {**body, "name": "other"}, headers=headers)

    assert other.status_code == 201
    assert Instance.objects.count() == 2


def test_a_refusal_is_remembered_too(api, body, quota):
    headers = {"Idempotency-Key": "k-4"}
    bad = {**body, "region": "mars-1"}
    first = api.post("/instances/", bad, headers=headers)

    second = api.post("/instances/", bad, headers=headers)

    assert first.status_code == second.status_code == 400
    assert first.content == second.content and second["Idempotent-Replayed"] == "true"


def test_a_key_still_in_progress_is_409(team, api, body, quota):
    from portal.api.idempotency import request_hash  # noqa: F401  (the record is made by hand)
    from portal.api.models import ApiToken, IdempotencyRecord
    from portal.api.services import idempotency_claim

    token = ApiToken.objects.get(user=team.member.user)
    response = api.post("/instances/", body, headers={"Idempotency-Key": "probe"})
    record = IdempotencyRecord.objects.get(key="probe")
    IdempotencyRecord.objects.create(token=token, key="busy", request_hash=record.request_hash)

    assert_error(
        api.post("/instances/", body, headers={"Idempotency-Key": "busy"}),
        409,
        "idempotency_in_progress",
    )
    assert response.status_code == 201
    assert idempotency_claim  # the service that raised it


def test_a_server_error_forgets_the_key_so_a_retry_runs(api, body, quota, monkeypatch):
    from portal.api.models import IdempotencyRecord

    calls = []

    def crash(**kwargs):
        calls.append(1)
        raise RuntimeError("backend of the portal exploded")

    monkeypatch.setattr("portal.api.v1.instances.services.instance_launch", crash)
    api.client.raise_request_exception = False
    assert_error(api.post("/instances/", body, headers={"Idempotency-Key": "k-5"}), 500)
    assert not IdempotencyRecord.objects.exists()
    monkeypatch.undo()

    assert api.post("/instances/", body, headers={"Idempotency-Key": "k-5"}).status_code == 201


@pytest.mark.parametrize("key", ["", "with space", "é", "x" * 256])
def test_a_malformed_key_is_400(api, body, quota, key):
    error = assert_error(
        api.post("/instances/", body, headers={"Idempotency-Key": key}),
        400,
        "invalid_idempotency_key",
    )
    assert "Idempotency-Key" in error["details"]
    assert not Instance.objects.exists()


def test_expired_keys_are_forgotten(api, body, quota):
    from datetime import timedelta

    from django.utils import timezone

    from portal.api.models import IdempotencyRecord
    from portal.api.tasks import idempotency_purge

    api.post("/instances/", body, headers={"Idempotency-Key": "old"})
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))

    assert idempotency_purge() == 1
    assert not IdempotencyRecord.objects.exists()


# Reading


def test_list_filters_and_paginates(team, api, make_instance, catalog):
    running = [make_instance(State.RUNNING) for _ in range(3)]
    make_instance(State.STOPPED)
    make_instance(State.RUNNING, region=catalog.eu_west)

    body = api.get("/instances/", {"state": "running", "region": "us-east-1"}).json()
    assert body["count"] == 3
    assert [i["id"] for i in body["results"]] == [i.pk for i in reversed(running)]

    page = api.get("/instances/", {"page_size": 2, "page": 2}).json()
    assert page["count"] == 5 and page["page"] == 2 and len(page["results"]) == 2
    assert page["next"].endswith("page=3&page_size=2")
    assert page["previous"].endswith("page=1&page_size=2")
    beyond = api.get("/instances/", {"page": 9}).json()
    assert beyond["results"] == [] and beyond["next"] is None
    by_type = api.get("/instances/", {"instance_type": "gpu_8x_h100"}).json()
    assert by_type["count"] == 0


def test_the_list_runs_the_same_queries_for_3_and_30_instances(api, make_instance):
    for _ in range(3):
        make_instance(State.RUNNING)
    api.get("/token/")  # the token's last use is written once a minute: not in the count
    with CaptureQueriesContext(connection) as few:
        api.get("/instances/")
    for _ in range(27):
        make_instance(State.RUNNING)
    with CaptureQueriesContext(connection) as many:
        assert len(api.get("/instances/", {"page_size": 50}).json()["results"]) == 30

    assert len(many) == len(few)


def test_get_and_events(api, launch):
    instance = launch()

    detail = api.get(f"/instances/{instance.pk}/").json()
    events = api.get(f"/instances/{instance.pk}/events/").json()

    assert detail["name"] == "train-1" and detail["state"] == "pending"
    assert events[0]["to_state"] == "pending" and "Launched" in events[0]["message"]


# Actions


@pytest.mark.parametrize(
    ("state", "action", "to_state", "task"),
    [
        (State.RUNNING, "stop", State.STOPPING, "stop"),
        (State.STOPPED, "start", State.STARTING, "start"),
        (State.RUNNING, "reboot", State.REBOOTING, "reboot"),
        (State.RUNNING, "terminate", State.TERMINATING, "terminate"),
    ],
)
def test_actions_move_the_instance_and_enqueue_its_task(
    api,
    make_instance,
    _no_broker,
    django_capture_on_commit_callbacks,
    state,
    action,
    to_state,
    task,
):
    instance = make_instance(state)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/instances/{instance.pk}/{action}/")

    assert response.status_code == 202, response.content
    assert response.json()["state"] == to_state
    assert _no_broker == [(task, instance.pk)]


def test_an_illegal_action_is_409_and_changes_nothing(api, make_instance):
    instance = make_instance(State.TERMINATED)

    error = assert_error(api.post(f"/instances/{instance.pk}/stop/"), 409, "illegal_transition")

    assert "cannot stop" in error["message"]
    instance.refresh_from_db()
    assert instance.state == State.TERMINATED


def test_asking_twice_is_harmless(
    api, make_instance, _no_broker, django_capture_on_commit_callbacks
):
    instance = make_instance(State.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"/instances/{instance.pk}/stop/")
        second = api.post(f"/instances/{instance.pk}/stop/")

    assert second.status_code == 202 and second.json()["state"] == "stopping"
    assert _no_broker == [("stop", instance.pk)]


# Tenancy and roles


def test_another_organizations_instance_is_404_everywhere(api, outsider, catalog, quota):
    theirs = Instance.objects.create(
        organization=outsider.organization,
        name="theirs",
        instance_type=catalog.h100_1x,
        region=catalog.us_east,
        image=catalog.ubuntu,
        gpus=1,
        state=State.RUNNING,
    )

    for path in (f"/instances/{theirs.pk}/", f"/instances/{theirs.pk}/events/"):
        assert_error(api.get(path), 404, "not_found")
    for action in ("start", "stop", "reboot", "terminate"):
        assert_error(api.post(f"/instances/{theirs.pk}/{action}/"), 404, "not_found")
    assert api.get("/instances/").json()["count"] == 0
    theirs.refresh_from_db()
    assert theirs.state == State.RUNNING


def test_viewers_read_instances_but_cannot_act(team, api_as, make_instance, body):
    instance = make_instance(State.RUNNING)
    viewer = api_as(team.viewer)

    assert viewer.get(f"/instances/{instance.pk}/").status_code == 200
    assert_error(viewer.post(f"/instances/{instance.pk}/stop/"), 403, "forbidden")
    assert_error(viewer.post("/instances/", body), 403, "forbidden")


def test_billing_members_do_not_see_instances(team, api_as, make_instance):
    instance = make_instance(State.RUNNING)
    billing = api_as(team.billing, scope=Scope.READ)

    assert_error(billing.get("/instances/"), 403, "forbidden")
    assert_error(billing.get(f"/instances/{instance.pk}/"), 403, "forbidden")


def test_a_member_of_two_organizations_reaches_only_the_tokens_one(team, outsider, api_as, catalog):
    both = MembershipFactory(organization=outsider.organization, user=team.member.user)
    theirs = Instance.objects.create(
        organization=outsider.organization,
        name="theirs",
        instance_type=catalog.h100_1x,
        region=catalog.us_east,
        image=catalog.ubuntu,
        gpus=1,
    )

    acme = api_as(team.member)
    rival = api_as(both)

    assert_error(acme.get(f"/instances/{theirs.pk}/"), 404)
    assert rival.get(f"/instances/{theirs.pk}/").status_code == 200


def test_a_claim_left_behind_is_taken_over_after_its_lease(api, body, quota, monkeypatch, settings):
    """The web process launched and died before recording the answer: a retry within the lease
    is told to wait; after it, the retry takes the key over and gets the instance already made."""
    from datetime import timedelta

    from django.utils import timezone

    from portal.api.models import IdempotencyRecord

    settings.API_IDEMPOTENCY_LEASE = 30
    headers = {"Idempotency-Key": "k-dead"}
    monkeypatch.setattr(
        "portal.api.idempotency.services.idempotency_complete", lambda **kwargs: None
    )
    first = api.post("/instances/", body, headers=headers)  # launched; the answer is lost
    monkeypatch.undo()
    [made] = Instance.objects.all()
    assert first.status_code == 201

    assert_error(api.post("/instances/", body, headers=headers), 409, "idempotency_in_progress")
    IdempotencyRecord.objects.filter(key="k-dead").update(
        created_at=timezone.now() - timedelta(seconds=31)
    )

    retry = api.post("/instances/", body, headers=headers)

    assert retry.status_code in (200, 201), retry.content
    assert retry.json()["id"] == made.pk
    assert Instance.objects.count() == 1
    again = api.post("/instances/", body, headers=headers)
    assert again["Idempotent-Replayed"] == "true" and again.content == retry.content
