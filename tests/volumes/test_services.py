"""Volumes through their services and tasks, against the real simulator."""

import pytest
from django.core import mail

from portal.instances.models import State as InstanceState
from portal.lib.errors import ApplicationError
from portal.quotas.models import Quota
from portal.quotas.services import StorageQuotaExceeded
from portal.volumes import services, sync
from portal.volumes.models import Attachment, State, Volume, VolumeSize

pytestmark = pytest.mark.slow


def storage_used(team, region) -> int:
    row = Quota.objects.filter(organization=team.organization, region=region, gpu_model=None)
    return row.get().storage_used_gb if row.exists() else 0


def backend_volume(simulator, volume: Volume) -> dict:
    return next(v for v in simulator.control.state()["volumes"] if v["id"] == volume.backend_id)


def test_create_counts_the_quota_and_the_task_makes_it_on_the_backend(
    make_volume, simulator, team, catalog
):
    volume = make_volume("datasets", size_gb=100)

    assert volume.backend_id.startswith("v-")
    assert volume.mount_path == "/data/datasets"
    assert storage_used(team, catalog.us_east) == 100
    on_backend = backend_volume(simulator, volume)
    assert (on_backend["size_gb"], on_backend["region"], on_backend["name"]) == (
        100,
        "us-east-1",
        "datasets",
    )
    (period,) = VolumeSize.objects.filter(volume=volume)
    assert period.size_gb == 100 and period.end is None


def test_running_the_create_task_twice_makes_one_volume(make_volume, simulator):
    volume = make_volume()
    sync.create(volume.pk)
    volume.backend_id = ""
    volume.state = State.CREATING
    volume.save()
    sync.create(volume.pk)  # asked again after a lost answer: the same request id

    volume.refresh_from_db()
    assert len(simulator.control.state()["volumes"]) == 1
    assert volume.backend_id == simulator.control.state()["volumes"][0]["id"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"size_gb": 0}, "at least 1 GB"),
        ({"size_gb": -5}, "at least 1 GB"),
        ({"size_gb": "10"}, "whole number of GB"),
        ({"size_gb": 1.5}, "whole number of GB"),
        ({"size_gb": 1001}, "your storage limit there is 1000 GB with 0 GB in use"),
        ({"name": "Has Spaces"}, "not a valid name"),
        ({"name": ""}, "Give the volume a name"),
        ({"region": "mars-1"}, "There is no region mars-1"),
        ({"region": "ap-old-1"}, "There is no region"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(team, catalog, storage, changes, message):
    arguments = {
        "membership": team.member,
        "region": catalog.us_east,
        "name": "datasets",
        "size_gb": 100,
        **changes,
    }
    with pytest.raises(ApplicationError, match=message):
        services.volume_create(**arguments)
    assert not Volume.objects.exists()
    assert storage_used(team, catalog.us_east) == 0


def test_above_the_quota_links_to_a_storage_request(team, catalog, storage):
    services.volume_create(membership=team.member, region=catalog.eu_west, name="a", size_gb=150)
    with pytest.raises(StorageQuotaExceeded) as caught:
        services.volume_create(membership=team.member, region=catalog.eu_west, name="b", size_gb=51)
    assert "50 GB are free" in caught.value.message
    assert "kind=storage" in caught.value.request_url
    assert "limit=201" in caught.value.request_url
    assert Volume.objects.count() == 1


def test_a_name_in_use_in_the_region_is_refused(make_volume, team, catalog):
    make_volume("datasets")
    with pytest.raises(ApplicationError, match="already a volume named"):
        services.volume_create(
            membership=team.member, region=catalog.us_east, name="datasets", size_gb=1
        )
    assert storage_used(team, catalog.us_east) == 100


def test_a_viewer_cannot_create(team, catalog, storage):
    with pytest.raises(ApplicationError) as caught:
        services.volume_create(membership=team.viewer, region=catalog.us_east, name="x", size_gb=1)
    assert caught.value.code == "forbidden"


def test_resize_up_grows_on_the_backend_and_starts_a_new_billing_period(
    make_volume, simulator, team, catalog, django_capture_on_commit_callbacks
):
    volume = make_volume(size_gb=100)
    with django_capture_on_commit_callbacks(execute=True):
        services.volume_resize(membership=team.member, volume=volume, size_gb=250)

    volume.refresh_from_db()
    assert (volume.size_gb, volume.backend_size_gb) == (250, 250)
    assert backend_volume(simulator, volume)["size_gb"] == 250
    assert storage_used(team, catalog.us_east) == 250
    sizes = list(VolumeSize.objects.filter(volume=volume).order_by("start"))
    assert [(s.size_gb, s.end is None) for s in sizes] == [(100, False), (250, True)]


@pytest.mark.parametrize(
    ("size", "message"),
    [(50, "a volume only grows"), (100, "already has 100 GB"), (1001, "storage limit")],
)
def test_resize_down_same_or_over_quota_is_refused_and_changes_nothing(
    make_volume, simulator, team, catalog, size, message
):
    volume = make_volume(size_gb=100)
    with pytest.raises(ApplicationError, match=message):
        services.volume_resize(membership=team.member, volume=volume, size_gb=size)
    volume.refresh_from_db()
    assert volume.size_gb == 100
    assert backend_volume(simulator, volume)["size_gb"] == 100
    assert storage_used(team, catalog.us_east) == 100
    assert VolumeSize.objects.filter(volume=volume).count() == 1


def test_delete_needs_the_typed_name(make_volume, simulator, team):
    volume = make_volume("datasets")
    with pytest.raises(ApplicationError, match="Type the volume's name, datasets"):
        services.volume_delete(membership=team.member, volume=volume, confirm_name="dataset")
    volume.refresh_from_db()
    assert volume.state == State.AVAILABLE
    assert backend_volume(simulator, volume)["state"] == "available"


def test_delete_removes_it_on_the_backend_stops_billing_and_frees_the_quota(
    make_volume, simulator, team, catalog, django_capture_on_commit_callbacks
):
    volume = make_volume("datasets", size_gb=100)
    with django_capture_on_commit_callbacks(execute=True):
        services.volume_delete(membership=team.member, volume=volume, confirm_name="datasets")

    volume.refresh_from_db()
    assert volume.state == State.DELETED
    assert volume.deleted_at is not None
    assert backend_volume(simulator, volume)["state"] == "deleted"
    assert storage_used(team, catalog.us_east) == 0
    assert VolumeSize.objects.get(volume=volume).end == volume.deleted_at
    # The name is free again.
    make_volume("datasets")


# Attaching at launch


@pytest.fixture
def running(launch, eager, django_capture_on_commit_callbacks):
    def start(name="train-1", **overrides):
        with django_capture_on_commit_callbacks(execute=True):
            instance = launch(name, **overrides)
        instance.refresh_from_db()
        assert instance.state == InstanceState.RUNNING, instance.state_reason
        return instance

    return start


def terminate(instance, team, django_capture_on_commit_callbacks):
    from portal.instances import services as instance_services

    with django_capture_on_commit_callbacks(execute=True):
        instance_services.instance_action(
            membership=team.member,
            instance=instance,
            action="terminate",
            confirm_name=instance.name,
        )
    instance.refresh_from_db()
    assert instance.state == InstanceState.TERMINATED


def test_a_launch_attaches_the_volume_and_the_machine_mounts_it(
    make_volume, running, simulator, team
):
    volume = make_volume("datasets")
    instance = running(volume_ids=[volume.pk])

    machine = next(
        m for m in simulator.control.state()["machines"] if m["id"] == instance.backend_id
    )
    assert machine["volumes"] == [volume.backend_id]
    assert backend_volume(simulator, volume)["attached_to"] == [instance.backend_id]
    (attachment,) = Attachment.objects.filter(volume=volume)
    assert (attachment.instance_id, attachment.instance_name, attachment.active) == (
        instance.pk,
        "train-1",
        True,
    )


def test_what_is_written_survives_terminate_and_is_there_on_the_next_machine(
    make_volume, running, simulator, team, django_capture_on_commit_callbacks
):
    volume = make_volume("datasets")
    first = running("writer", volume_ids=[volume.pk])
    simulator.control.write_file(first.backend_id, "/data/datasets/weights.bin", "epoch-7")

    with pytest.raises(ApplicationError, match="attached to writer"):
        services.volume_delete(membership=team.member, volume=volume, confirm_name="datasets")
    terminate(first, team, django_capture_on_commit_callbacks)
    assert not Attachment.objects.get(volume=volume).active
    volume.refresh_from_db()
    assert volume.state == State.AVAILABLE  # it outlives the machine

    second = running("reader", volume_ids=[volume.pk])
    assert simulator.control.read_file(second.backend_id, "/data/datasets/weights.bin") == (
        "epoch-7"
    )


def test_a_volume_in_another_region_is_refused_and_nothing_is_launched(
    make_volume, launch, team, catalog
):
    volume = make_volume("eu-data", size_gb=10, region=catalog.eu_west)
    with pytest.raises(
        ApplicationError, match="is in eu-west-1; this instance launches in us-east-1"
    ):
        launch(volume_ids=[volume.pk])
    assert not team.organization.instances.exists()
    assert (
        Quota.objects.get(
            organization=team.organization, region=catalog.us_east, gpu_model=catalog.h100
        ).on_demand_used
        == 0
    )


def test_another_organizations_volume_is_no_such_volume(
    make_volume, launch, team, outsider, catalog
):
    from tests.volumes.conftest import set_storage

    set_storage(outsider.organization, catalog.us_east, 100)
    theirs = make_volume("theirs", size_gb=10, membership=outsider)
    with pytest.raises(ApplicationError) as caught:
        launch(volume_ids=[theirs.pk])
    assert caught.value.code == "not_found"
    assert "no volume" in caught.value.message
    assert not team.organization.instances.exists()


def test_a_volume_held_by_a_live_machine_is_refused_unless_volumes_are_shared(
    make_volume, running, launch, team, settings
):
    volume = make_volume("datasets")
    running("first", volume_ids=[volume.pk])

    settings.VOLUMES_SHARED = False
    with pytest.raises(ApplicationError, match="attached to first, which has not ended"):
        launch("second", volume_ids=[volume.pk])
    assert team.organization.instances.count() == 1

    settings.VOLUMES_SHARED = True
    second = running("second", volume_ids=[volume.pk])
    assert Attachment.objects.filter(volume=volume, detached_at__isnull=True).count() == 2
    assert second.state == InstanceState.RUNNING


def test_the_simulator_default_is_shared(make_volume):
    assert services.backend_shares_volumes() is True


def test_a_stopped_machine_keeps_its_volume(
    make_volume, running, team, django_capture_on_commit_callbacks, settings
):
    from portal.instances import services as instance_services

    volume = make_volume("datasets")
    instance = running("box", volume_ids=[volume.pk])
    with django_capture_on_commit_callbacks(execute=True):
        instance_services.instance_action(membership=team.member, instance=instance, action="stop")
    instance.refresh_from_db()
    assert instance.state == InstanceState.STOPPED
    assert Attachment.objects.get(volume=volume).active
    settings.VOLUMES_SHARED = False
    with pytest.raises(ApplicationError, match="attached to box"):
        services.volume_delete(membership=team.member, volume=volume, confirm_name="datasets")


# Reconciliation


def test_a_volume_the_backend_lost_is_reported_to_the_owners_and_staff(
    make_volume, simulator, team, catalog, settings, django_capture_on_commit_callbacks
):
    volume = make_volume("datasets")
    simulator.control.lose_volume(volume.backend_id)
    with django_capture_on_commit_callbacks(execute=True):
        report = sync.reconcile()

    assert report.lost == [volume.pk]
    volume.refresh_from_db()
    assert volume.state == State.LOST
    assert VolumeSize.objects.get(volume=volume).end is not None  # billing stopped
    assert storage_used(team, catalog.us_east) == 0
    recipients = {tuple(m.to) for m in mail.outbox}
    assert (settings.OPERATOR_EMAIL,) in recipients
    customers = [m for m in mail.outbox if m.to != [settings.OPERATOR_EMAIL]]
    assert {m.to[0] for m in customers} == {team.owner.user.email, team.admin.user.email}
    assert "no longer has your volume datasets" in customers[0].body
    assert "We stopped billing it" in customers[0].body
    # Running it again reports nothing new.
    mail.outbox.clear()
    assert sync.reconcile().lost == []
    assert mail.outbox == []


def test_an_orphan_volume_is_recorded_for_staff_and_never_deleted(
    simulator, team, storage, eager, settings, django_capture_on_commit_callbacks
):
    from portal.provisioning import get_backend
    from portal.volumes.models import OrphanVolume

    backend = get_backend()
    backend_id = backend.volume_create(
        request_id="not-ours", region="us-east-1", size_gb=42, name="stray"
    )
    with django_capture_on_commit_callbacks(execute=True):
        report = sync.reconcile()
        sync.reconcile()

    assert report.orphans == [backend_id]
    orphan = OrphanVolume.objects.get()
    assert (orphan.backend_id, orphan.name, orphan.size_gb, orphan.decision) == (
        backend_id,
        "stray",
        42,
        "",
    )
    assert backend.volume_get(backend_id).state == "available"
    (message,) = mail.outbox
    assert message.to == [settings.OPERATOR_EMAIL]
    assert "NOT deleted" in message.body


def test_a_volume_created_while_the_answer_was_lost_is_adopted(
    team, catalog, storage, simulator, eager
):
    volume = services.volume_create(
        membership=team.member, region=catalog.us_east, name="datasets", size_gb=10
    )  # its task never ran (no commit); the backend made it anyway:
    from portal.provisioning import get_backend

    get_backend().volume_create(
        request_id=str(volume.request_id), region="us-east-1", size_gb=10, name="datasets"
    )
    report = sync.reconcile()
    assert report.adopted == [volume.pk]
    volume.refresh_from_db()
    assert volume.state == State.AVAILABLE


def test_a_volume_the_backend_has_no_room_for_fails_bills_nothing_and_says_so(
    team, catalog, storage, simulator, eager, django_capture_on_commit_callbacks
):
    fleet = {**simulator.control.state()["catalog"], "storage_gb": {"us-east-1": 50}}
    simulator.control.set_fleet(fleet)
    with django_capture_on_commit_callbacks(execute=True):
        volume = services.volume_create(
            membership=team.member, region=catalog.us_east, name="big", size_gb=100
        )

    volume.refresh_from_db()
    assert volume.state == State.FAILED
    assert "no room for 100 GB" in volume.detail
    assert storage_used(team, catalog.us_east) == 0
    (period,) = VolumeSize.objects.filter(volume=volume)
    assert period.start == period.end  # nothing billed
    sent = {m.to[0] for m in mail.outbox}
    assert sent == {team.owner.user.email, team.admin.user.email}
    assert "could not be created" in mail.outbox[0].subject
    assert "Nothing was billed" in mail.outbox[0].body
    assert simulator.control.state()["volumes"] == []
