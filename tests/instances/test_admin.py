"""Django admin for instances: filters, the read-only timeline, terminate and resync actions."""

import pytest
from django.urls import reverse

from portal.instances.models import State
from tests.factories import UserFactory


@pytest.fixture
def staff_client(db, client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def sent(monkeypatch):
    calls = []
    for name in ("terminate", "resync"):
        monkeypatch.setattr(
            f"portal.instances.tasks.instance_{name}.delay",
            lambda pk, name=name: calls.append((name, pk)),
        )
    return calls


def test_the_changelist_filters_by_state_region_and_organization(
    staff_client, make_instance, outsider, catalog
):
    running = make_instance(State.RUNNING)
    stopped = make_instance(State.STOPPED, region=catalog.eu_west)
    rival = make_instance(State.RUNNING, organization=outsider.organization)
    changelist = reverse("admin:instances_instance_changelist")
    page = staff_client.get(changelist)
    assert page.status_code == 200
    for title in ("By state", "By region", "By organization"):
        assert title in page.text
    filtered = staff_client.get(changelist + "?state__exact=running")
    assert running.name in filtered.text and stopped.name not in filtered.text
    by_org = staff_client.get(changelist + f"?organization__id__exact={outsider.organization_id}")
    assert rival.name in by_org.text and running.name not in by_org.text


def test_the_change_page_shows_the_timeline_read_only(staff_client, make_instance):
    from portal.instances import lifecycle

    instance = make_instance(State.PROVISIONING)
    lifecycle.mark_running(instance.pk, ip="203.0.113.4")
    page = staff_client.get(reverse("admin:instances_instance_change", args=[instance.pk]))
    assert page.status_code == 200
    assert "Running at 203.0.113.4." in page.text
    assert 'name="events-0-message"' not in page.text  # not editable


def test_terminate_and_resync_actions_enqueue_tasks(
    staff_client, make_instance, sent, django_capture_on_commit_callbacks
):
    running = make_instance(State.RUNNING)
    ended = make_instance(State.TERMINATED)
    changelist = reverse("admin:instances_instance_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            changelist,
            {"action": "terminate", "_selected_action": [running.pk, ended.pk]},
            follow=True,
        )
    assert "Terminating 1 instance(s)." in response.text
    assert "cannot terminate" in response.text
    running.refresh_from_db()
    assert running.state == State.TERMINATING
    assert running.events.last().message == "Terminated by the operator's staff."
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(changelist, {"action": "resync", "_selected_action": [ended.pk]})
    assert sent == [("terminate", running.pk), ("resync", ended.pk)]
