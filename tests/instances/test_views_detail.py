"""The instance page reads the instance, its price and whether it has volumes in one query,
and the volumes themselves only when there are some."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.instances.models import State
from portal.volumes.models import Attachment, Volume
from tests.factories import OrganizationFactory


def url(*args):
    return reverse("instances:detail", args=["acme", *args])


def _attachment_queries(captured) -> list[str]:
    """Queries reading attachment rows (not the instance's query, which asks whether any exist)."""
    return [q["sql"] for q in captured if q["sql"].startswith('SELECT "volumes_attachment"')]


def test_an_instance_without_volumes_is_shown_without_reading_attachments(
    client_for, team, make_instance
):
    instance = make_instance(State.RUNNING)
    client = client_for(team.member.user)
    client.get(url(instance.pk))  # warm the session
    with CaptureQueriesContext(connection) as captured:
        page = client.get(url(instance.pk))
    assert 'data-testid="instance-volumes"' not in page.text
    assert _attachment_queries(captured) == []


def test_a_volume_attached_to_the_instance_shows_on_the_next_view(
    client_for, team, catalog, make_instance
):
    instance = make_instance(State.RUNNING)
    client = client_for(team.member.user)
    assert 'data-testid="instance-volumes"' not in client.get(url(instance.pk)).text
    volume = Volume.objects.create(
        organization=team.organization,
        region=catalog.us_east,
        name="datasets",
        size_gb=100,
        state="in_use",
    )
    Attachment.objects.create(volume=volume, instance_id=instance.pk, instance_name=instance.name)
    page = client.get(url(instance.pk)).text
    assert 'data-testid="instance-volumes"' in page
    assert "/data/datasets" in page


def _fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def test_the_page_reads_the_instance_and_its_relations_as_the_orm_does(
    team, catalog, make_instance, django_assert_num_queries
):
    """`instance_priced_for_member` is plain SQL: each field of the instance and of its
    type, GPU model, region, image and launcher is the ORM's (`instance_list_for_organization`),
    the relations are read with it (no query more) and an instance without a launcher has none."""
    from django.http import Http404

    from portal.instances import selectors

    volume = Volume.objects.create(
        organization=team.organization, region=catalog.us_east, name="d", size_gb=10
    )
    instances = [
        make_instance(State.RUNNING),
        make_instance(State.STOPPED, preemptible=True, region=catalog.eu_west, created_by=None),
        make_instance(State.PENDING, instance_type=catalog.l40s_1x, ssh_user="root"),
    ]
    Attachment.objects.create(volume=volume, instance_id=instances[0].pk, instance_name="x")
    for instance in instances:
        expected = (
            selectors.instance_list_for_organization(membership=team.member)
            .filter(pk=instance.pk)
            .get()
        )
        with django_assert_num_queries(1):
            found, _hourly = selectors.instance_priced_for_member(
                membership=team.member, pk=instance.pk
            )
            assert _fields(found) == _fields(expected)
            assert _fields(found.instance_type) == _fields(expected.instance_type)
            assert _fields(found.instance_type.gpu_model) == _fields(
                expected.instance_type.gpu_model
            )
            assert _fields(found.region) == _fields(expected.region)
            assert _fields(found.image) == _fields(expected.image)
            if expected.created_by is None:
                assert found.created_by is None
            else:
                assert _fields(found.created_by) == _fields(expected.created_by)
        assert found.has_volumes is (instance == instances[0])
    other = make_instance(State.RUNNING, organization=OrganizationFactory(slug="elsewhere"))
    with pytest.raises(Http404):
        selectors.instance_priced_for_member(membership=team.member, pk=other.pk)
    with pytest.raises(Http404):
        selectors.instance_priced_for_member(membership=team.member, pk=instances[-1].pk + 1000)
