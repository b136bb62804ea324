"""instance_launch and the customer actions: every bad input refused with nothing written."""

import uuid

import pytest
from django.core.cache import cache

from portal.instances import services
from portal.instances.capacity import capacity_snapshot_store
from portal.instances.lifecycle import IllegalTransition
from portal.instances.models import Instance, InstanceEvent, State
from portal.lib.errors import ApplicationError
from portal.provisioning import Capacity
from portal.quotas.models import Quota
from portal.quotas.services import QuotaExceeded
from tests.instances.conftest import set_quota
from tests.sshkeys.factories import SshKeyFactory


def _nothing_written(team):
    assert not Instance.objects.exists()
    assert not InstanceEvent.objects.exists()
    assert not Quota.objects.filter(organization=team.organization, on_demand_used__gt=0).exists()
    assert not Quota.objects.filter(organization=team.organization, preemptible_used__gt=0).exists()


def test_a_launch_records_a_pending_instance_reserves_quota_and_enqueues_provisioning(
    launch, team, catalog, ssh_key, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(
        "portal.instances.tasks.instance_provision.delay", lambda pk: sent.append(pk)
    )
    with django_capture_on_commit_callbacks(execute=True):
        instance = launch("train-1", instance_type="gpu_8x_h100")
    assert sent == [instance.pk]
    assert instance.state == State.PENDING
    assert instance.gpus == 8
    assert instance.created_by == team.member.user
    assert instance.ssh_keys == [
        {"name": "laptop", "fingerprint": ssh_key.fingerprint, "public_key": ssh_key.public_key}
    ]
    quota = Quota.objects.get(
        organization=team.organization, region=catalog.us_east, gpu_model=catalog.h100
    )
    assert quota.on_demand_used == 8
    event = instance.events.get()
    assert (event.to_state, event.actor) == (State.PENDING, team.member.user)


def test_nothing_is_enqueued_when_the_launch_is_rolled_back(launch, monkeypatch):
    """The task is enqueued on commit only (pytest-django's test transaction never commits)."""
    sent = []
    monkeypatch.setattr(
        "portal.instances.tasks.instance_provision.delay", lambda pk: sent.append(pk)
    )
    launch()
    assert sent == []


BAD_INPUT = [
    ({"name": ""}, "name", "Give the instance a name."),
    ({"name": "a" * 64}, "name", "at most 63 characters"),
    ({"name": "Web_1"}, "name", "lower-case letters, digits and hyphens"),
    ({"name": "-web"}, "name", "starting and ending with a letter or digit"),
    ({"name": "web-"}, "name", "lower-case letters"),
    ({"name": "wéb"}, "name", "lower-case letters"),
    ({"instance_type": "gpu_9x_nope"}, "instance_type", "There is no instance type"),
    ({"instance_type": "gpu_4x_h100"}, "instance_type", "no longer available"),
    ({"instance_type": ""}, "instance_type", "Choose instance type"),
    ({"instance_type": "gpu_2x_h100"}, "instance_type", "has no price yet"),
    ({"region": "mars-1"}, "region", "There is no region"),
    ({"region": "ap-old-1"}, "region", "no longer available"),
    ({"region": "eu-west-1", "instance_type": "gpu_8x_h100"}, "region", "is not offered in"),
    ({"image": "windows-95"}, "image", "There is no image"),
    ({"image": "ubuntu-18.04"}, "image", "no longer available"),
    ({"ssh_key_ids": []}, "ssh_keys", "Choose at least one SSH key"),
    ({"ssh_key_ids": [999999]}, "ssh_keys", "does not exist or is not available"),
    ({"ssh_key_ids": ["x"]}, "ssh_keys", "does not exist or is not available"),
    ({"idempotency_key": "not-a-uuid"}, None, "reload the page"),
]


@pytest.mark.parametrize(("overrides", "field", "message"), BAD_INPUT)
def test_bad_input_is_refused_clearly_and_writes_nothing(launch, team, overrides, field, message):
    with pytest.raises(ApplicationError) as refused:
        launch(**overrides)
    assert refused.value.field == field
    assert message in refused.value.message
    _nothing_written(team)


def test_an_instance_type_given_as_a_row_is_checked_like_its_code(launch, team, catalog):
    with pytest.raises(ApplicationError, match="is not offered in"):
        launch(region=catalog.eu_west, instance_type=catalog.h100_8x)
    with pytest.raises(ApplicationError, match="has no price yet"):
        launch(instance_type=catalog.unpriced)
    _nothing_written(team)
    assert launch(region=catalog.eu_west, instance_type=catalog.h100_1x).region == catalog.eu_west


def test_a_launch_reads_its_type_gpu_model_offer_price_region_and_image_in_one_query(
    launch, catalog
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        launch()
    catalog_reads = [
        q["sql"] for q in queries if q["sql"].startswith("SELECT") and 'FROM "catalog_' in q["sql"]
    ]
    # The instance type with its GPU model, offered in the region, priced; the region; the
    # image. (A launch that fails one of these reads each again, to say which.)
    assert len(catalog_reads) == 1
    assert 'JOIN "catalog_gpumodel"' in catalog_reads[0]
    assert 'JOIN "catalog_region"' in catalog_reads[0]
    assert 'JOIN "catalog_image"' in catalog_reads[0]


def test_another_organizations_key_is_refused(launch, team, outsider):
    foreign = SshKeyFactory(membership=outsider, shared=True)
    with pytest.raises(ApplicationError) as refused:
        launch(ssh_key_ids=[foreign.pk])
    assert refused.value.field == "ssh_keys"
    _nothing_written(team)


def test_a_launch_over_quota_names_the_limit_and_writes_nothing(launch, team):
    launch("big-1", instance_type="gpu_8x_h100")
    launch("big-2", instance_type="gpu_8x_h100")
    with pytest.raises(QuotaExceeded) as refused:
        launch("one-too-many")
    assert "limit there is 16 GPUs with 16 in use" in refused.value.message
    assert "/o/acme/quotas/requests/new/" in refused.value.request_url
    assert Instance.objects.count() == 2


def test_without_any_quota_the_launch_is_refused(launch, team):
    Quota.objects.all().delete()
    with pytest.raises(QuotaExceeded) as refused:
        launch()
    assert "limit there is 0 GPUs" in refused.value.message
    _nothing_written(team)


def test_a_launch_is_refused_when_the_capacity_snapshot_shows_no_room(launch, team):
    capacity_snapshot_store(
        capacities=[
            Capacity("us-east-1", "gpu_1x_h100", "H100 80GB", 0, 32, 0),
            Capacity("eu-west-1", "gpu_1x_h100", "H100 80GB", 1, 16, 1),
        ]
    )
    with pytest.raises(ApplicationError) as refused:
        launch()
    assert refused.value.code == "no_capacity"
    assert "no free capacity for 1x H100 80GB in US East" in refused.value.message
    _nothing_written(team)
    # One slot in eu-west-1: the first launch takes it, the second is refused.
    launch("eu-1", region="eu-west-1")
    with pytest.raises(ApplicationError):
        launch("eu-2", region="eu-west-1")
    cache.clear()
    launch("eu-2", region="eu-west-1")  # no snapshot: the backend decides


def test_launches_since_the_snapshot_are_those_with_a_higher_id(launch, team):
    from datetime import timedelta

    from django.utils import timezone

    from portal.instances.capacity import free_capacity

    before = launch("before")
    # A clock ahead of the snapshot's does not make an older launch count again.
    Instance.objects.filter(pk=before.pk).update(created_at=timezone.now() + timedelta(hours=1))
    snapshot = capacity_snapshot_store(
        capacities=[
            Capacity(
                region="us-east-1",
                instance_type="gpu_1x_h100",
                gpu_model="H100 80GB",
                free_instances=5,
                free_gpus=5,
                total_gpus=8,
            )
        ]
    )
    assert snapshot.last_instance_id == before.pk
    assert free_capacity().get("us-east-1", "gpu_1x_h100") == 5
    launch("after")
    assert free_capacity().get("us-east-1", "gpu_1x_h100") == 4


def test_a_snapshot_stored_before_it_kept_ids_counts_launches_by_time(launch, team):
    from dataclasses import replace

    from django.core.cache import cache as shared

    from portal.instances.capacity import CACHE_KEY, free_capacity

    snapshot = capacity_snapshot_store(
        capacities=[
            Capacity(
                region="us-east-1",
                instance_type="gpu_1x_h100",
                gpu_model="H100 80GB",
                free_instances=5,
                free_gpus=5,
                total_gpus=8,
            )
        ]
    )
    shared.set(CACHE_KEY, replace(snapshot, last_instance_id=None), timeout=None)
    launch("after")
    assert free_capacity().get("us-east-1", "gpu_1x_h100") == 4


def test_the_same_name_is_refused_while_the_first_lives_then_free_again(launch, team):
    first = launch("web-1")
    with pytest.raises(ApplicationError) as refused:
        launch("web-1")
    assert refused.value.field == "name"
    assert "already have an instance named" in refused.value.message
    Instance.objects.filter(pk=first.pk).update(state=State.TERMINATED)
    assert launch("web-1").pk != first.pk


def test_a_double_submit_creates_one_instance(launch, team, catalog):
    key = uuid.uuid4()
    first = launch("web-1", idempotency_key=str(key))
    second = launch("web-1", idempotency_key=key)
    assert first.pk == second.pk
    assert Instance.objects.count() == 1
    quota = Quota.objects.get(
        organization=team.organization, region=catalog.us_east, gpu_model=catalog.h100
    )
    assert quota.on_demand_used == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("limit", [16, 1])
def test_two_concurrent_submits_of_one_form_create_one_instance(
    team, catalog, quota, ssh_key, limit
):
    """Two requests at once: the quota row lock serializes them, the unique key decides,
    also when the first one took the last GPU of the quota."""
    import threading

    from django.db import connection

    set_quota(team.organization, catalog.us_east, catalog.h100, on_demand=limit)
    key = str(uuid.uuid4())
    results, errors = [], []
    barrier = threading.Barrier(2)

    def submit():
        try:
            barrier.wait()
            results.append(
                services.instance_launch(
                    membership=team.member,
                    name="web-1",
                    instance_type="gpu_1x_h100",
                    region="us-east-1",
                    image=catalog.ubuntu.code,
                    ssh_key_ids=[ssh_key.pk],
                    preemptible=False,
                    idempotency_key=key,
                ).pk
            )
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(results)) == 1
    assert Instance.objects.count() == 1


def test_a_viewer_cannot_launch(launch, team):
    with pytest.raises(ApplicationError) as refused:
        launch(membership=team.viewer)
    assert refused.value.code == "forbidden"


# Actions


@pytest.mark.parametrize(
    ("state", "action", "to"),
    [
        (State.RUNNING, "stop", State.STOPPING),
        (State.STOPPED, "start", State.STARTING),
        (State.RUNNING, "reboot", State.REBOOTING),
        (State.RUNNING, "terminate", State.TERMINATING),
        (State.PENDING, "terminate", State.TERMINATING),
        (State.STOPPED, "terminate", State.TERMINATING),
    ],
)
def test_an_allowed_action_moves_the_instance_and_enqueues_its_task(
    make_instance, team, state, action, to, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(
        f"portal.instances.tasks.instance_{action}.delay", lambda pk: sent.append(pk)
    )
    instance = make_instance(state)
    with django_capture_on_commit_callbacks(execute=True):
        services.instance_action(
            membership=team.member,
            instance=instance,
            action=action,
            confirm_name=instance.name if action == "terminate" else None,
        )
        # Asking twice (a double click) changes nothing and enqueues nothing more.
        services.instance_action(
            membership=team.member,
            instance=instance,
            action=action,
            confirm_name=instance.name if action == "terminate" else None,
        )
    instance.refresh_from_db()
    assert instance.state == to
    assert sent == [instance.pk]
    event = instance.events.get()
    assert event.actor == team.member.user


@pytest.mark.parametrize(
    ("state", "action", "message"),
    [
        (State.TERMINATED, "stop", "while it is terminated; stop works on running instances"),
        (State.STOPPED, "stop", "while it is stopped; stop works on running instances"),
        (State.RUNNING, "start", "start works on stopped instances"),
        (State.PROVISIONING, "reboot", "reboot works on running instances"),
        (State.TERMINATED, "terminate", "cannot terminate"),
        (State.FAILED, "start", "while it is failed"),
    ],
)
def test_an_illegal_action_is_refused_with_a_clear_message(
    make_instance, team, state, action, message
):
    instance = make_instance(state)
    with pytest.raises(IllegalTransition) as refused:
        services.instance_action(
            membership=team.member,
            instance=instance,
            action=action,
            confirm_name=instance.name if action == "terminate" else None,
        )
    assert message in refused.value.message
    instance.refresh_from_db()
    assert instance.state == state


def test_terminate_needs_the_typed_name(make_instance, team):
    instance = make_instance(State.RUNNING)
    with pytest.raises(ApplicationError) as refused:
        services.instance_terminate(membership=team.member, instance=instance, confirm_name="no")
    assert refused.value.field == "confirm_name"
    instance.refresh_from_db()
    assert instance.state == State.RUNNING


def test_a_viewer_cannot_act_and_an_outsider_cannot_touch_anothers_instance(
    make_instance, team, outsider
):
    instance = make_instance(State.RUNNING)
    with pytest.raises(ApplicationError) as refused:
        services.instance_stop(membership=team.viewer, instance=instance)
    assert refused.value.code == "forbidden"
    with pytest.raises(ApplicationError) as refused:
        services.instance_stop(membership=outsider, instance=instance)
    assert refused.value.code == "not_found"
    instance.refresh_from_db()
    assert instance.state == State.RUNNING


def test_unknown_action_is_refused(make_instance, team):
    with pytest.raises(ApplicationError):
        services.instance_action(
            membership=team.member, instance=make_instance(State.RUNNING), action="explode"
        )


def test_a_launch_while_a_provisioning_run_is_queued_enqueues_nothing(
    launch, django_capture_on_commit_callbacks, monkeypatch
):
    """The queued run takes every launch pending when it starts; once it has started, the
    next launch queues the next run."""
    from portal.instances import tasks

    sent = []
    monkeypatch.setattr(
        "portal.instances.tasks.instance_provision.delay", lambda pk: sent.append(pk)
    )
    with django_capture_on_commit_callbacks(execute=True):
        first = launch("a")
    with django_capture_on_commit_callbacks(execute=True):
        launch("b")
    assert sent == [first.pk]

    tasks._provision_queue_taken()  # what the run does first, before it looks
    with django_capture_on_commit_callbacks(execute=True):
        third = launch("c")
    assert sent == [first.pk, third.pk]
