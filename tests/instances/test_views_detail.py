"""The instance page reads the instance, its price and whether it has volumes in one query,
and the volumes themselves only when there are some."""

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.instances.models import State
from portal.volumes.models import Attachment, Volume


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
