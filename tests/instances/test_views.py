"""The instance pages: permissions and tenant isolation for every URL, htmx regions, queries."""

import re
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from portal.instances.capacity import capacity_snapshot_store
from portal.instances.models import Instance, State
from portal.provisioning import Capacity
from tests.instances.conftest import set_quota

VIEWERS = ["owner", "admin", "member", "viewer"]
MANAGERS = ["owner", "admin", "member"]


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    """Pages never call the backend; enqueued tasks are recorded instead of sent."""
    sent = []
    for name in ("provision", "stop", "start", "reboot", "terminate"):
        monkeypatch.setattr(
            f"portal.instances.tasks.instance_{name}.delay",
            lambda pk, name=name: sent.append((name, pk)),
        )
    return sent


def url(name, *args, org="acme"):
    return reverse(f"instances:{name}", args=[org, *args])


def _launch_data(catalog, ssh_key, **overrides):
    return {
        "idempotency_key": str(uuid.uuid4()),
        "instance_type": "gpu_1x_h100",
        "region": "us-east-1",
        "image": catalog.ubuntu.code,
        "ssh_keys": [str(ssh_key.pk)],
        "name": "train-1",
        **overrides,
    }


# Who may open what


@pytest.mark.parametrize("role", VIEWERS)
def test_members_who_may_see_instances_get_the_pages(client_for, team, make_instance, role):
    instance = make_instance(State.RUNNING, ip="203.0.113.5")
    client = client_for(team.by_role(role).user)
    page = client.get(url("list"))
    assert page.status_code == 200
    assert instance.name in page.text
    detail = client.get(url("detail", instance.pk))
    assert detail.status_code == 200
    assert "ssh ubuntu@203.0.113.5" in detail.text
    can_manage = role in MANAGERS
    assert ('data-testid="terminate"' in detail.text) == can_manage
    assert (">Stop</button>" in detail.text) == can_manage


@pytest.mark.parametrize("role", ["viewer", "billing"])
def test_roles_without_instances_manage_cannot_launch_or_act(
    client_for, team, make_instance, role, catalog, ssh_key
):
    instance = make_instance(State.RUNNING)
    client = client_for(team.by_role(role).user)
    assert client.get(url("launch")).status_code == 403
    assert client.post(url("launch"), _launch_data(catalog, ssh_key)).status_code == 403
    assert client.post(url("action", instance.pk, "stop")).status_code == 403
    instance.refresh_from_db()
    assert instance.state == State.RUNNING
    assert not Instance.objects.exclude(pk=instance.pk).exists()


def test_billing_members_do_not_see_instances(client_for, team, make_instance):
    instance = make_instance(State.RUNNING)
    client = client_for(team.billing.user)
    assert client.get(url("list")).status_code == 403
    assert client.get(url("detail", instance.pk)).status_code == 403


def test_an_outsider_gets_404_on_every_page(client_for, team, outsider, make_instance):
    instance = make_instance(State.RUNNING)
    client = client_for(outsider.user)
    for path in (
        url("list"),
        url("launch"),
        url("detail", instance.pk),
    ):
        assert client.get(path).status_code == 404, path
    assert client.post(url("action", instance.pk, "terminate")).status_code == 404


def test_another_organizations_instance_id_is_404_in_ones_own_organization(
    client_for, team, outsider, make_instance
):
    """The outsider asks their own organization's URLs for the team's instance id."""
    instance = make_instance(State.RUNNING)
    client = client_for(outsider.user)
    assert client.get(url("detail", instance.pk, org="rival")).status_code == 404
    response = client.post(
        url("action", instance.pk, "terminate", org="rival"), {"confirm_name": instance.name}
    )
    assert response.status_code == 404
    assert client.get(url("launch", org="rival") + f"?from={instance.pk}").status_code == 404
    instance.refresh_from_db()
    assert instance.state == State.RUNNING


def test_anonymous_visitors_are_sent_to_log_in(client, team, make_instance):
    instance = make_instance(State.RUNNING)
    for path in (url("list"), url("launch"), url("detail", instance.pk)):
        response = client.get(path)
        assert response.status_code == 302
        assert "/accounts/login/" in response["Location"]


def test_bad_ids_and_methods(client_for, team, make_instance):
    instance = make_instance(State.RUNNING)
    client = client_for(team.member.user)
    assert client.get(url("detail", 999999)).status_code == 404
    assert client.post(url("action", 999999, "stop")).status_code == 404
    assert client.get(url("action", instance.pk, "stop")).status_code == 405


# The list


def test_the_empty_list_invites_a_launch(client_for, team):
    page = client_for(team.member.user).get(url("list"))
    assert "No instances yet" in page.text
    assert url("launch") in page.text


def test_the_list_shows_state_type_region_ip_age_and_cost(client_for, team, make_instance):
    from datetime import timedelta

    from django.utils import timezone

    make_instance(
        State.RUNNING,
        name="web-1",
        ip="203.0.113.5",
        running_since=timezone.now() - timedelta(hours=2),
    )
    page = client_for(team.member.user).get(url("list"))
    text = page.text
    assert "web-1" in text and "Running" in text and "1x H100 80GB" in text
    assert "us-east-1" in text and "203.0.113.5" in text
    assert "$4.98" in text  # 2 h at $2.49


def test_the_list_polls_fast_while_an_instance_is_in_transition(client_for, team, make_instance):
    client = client_for(team.member.user)
    make_instance(State.RUNNING)
    settled = client.get(url("list"), headers={"HX-Request": "true"})
    assert "<html" not in settled.text  # just the region
    assert 'id="instances-table"' in settled.text
    # Slowly while nothing changes: an instance launched elsewhere (API, CLI) shows up.
    assert 'hx-trigger="every 10s"' in settled.text
    make_instance(State.PROVISIONING)
    moving = client.get(url("list"), headers={"HX-Request": "true"})
    assert 'hx-trigger="every 2s"' in moving.text
    full = client.get(url("list"))
    assert "<html" in full.text and 'hx-trigger="every 2s"' in full.text


def test_the_list_is_paginated(client_for, team, make_instance, settings):
    settings.INSTANCES_PER_PAGE = 2
    for _ in range(5):
        make_instance(State.RUNNING)
    client = client_for(team.member.user)
    page = client.get(url("list"))
    assert "1–2 of 5" in page.text
    assert "Page 1 of 3" in page.text
    assert "Page 3 of 3" in client.get(url("list") + "?page=3").text
    assert "Page 3 of 3" in client.get(url("list") + "?page=99").text


def _bulk(team, catalog, n):
    Instance.objects.bulk_create(
        Instance(
            organization=team.organization,
            created_by=team.member.user,
            name=f"bulk-{i}",
            instance_type=catalog.h100_8x if i % 2 else catalog.h100_1x,
            region=catalog.us_east if i % 3 else catalog.eu_west,
            image=catalog.ubuntu,
            gpus=1,
            preemptible=bool(i % 5),
            state=[State.RUNNING, State.STOPPED, State.TERMINATED, State.PROVISIONING][i % 4],
            backend_id=f"m-bulk{i}",
            ip=f"198.51.100.{i % 250}",
        )
        for i in range(n)
    )


def _queries(client, path) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured.captured_queries)


@pytest.mark.parametrize("per_page", [25, 1000])
def test_the_list_uses_as_many_queries_for_500_instances_as_for_5(
    client_for, team, catalog, settings, per_page
):
    settings.INSTANCES_PER_PAGE = per_page
    client = client_for(team.member.user)
    _bulk(team, catalog, 5)
    client.get(url("list"))  # warm the session
    few = _queries(client, url("list"))
    Instance.objects.all().delete()
    _bulk(team, catalog, 500)
    many = _queries(client, url("list"))
    assert few == many, (few, many)


# The detail page


def test_the_detail_page_shows_the_timeline_and_only_allowed_actions(
    client_for, team, make_instance
):
    from portal.instances import lifecycle

    instance = make_instance(State.PROVISIONING)
    lifecycle.mark_running(instance.pk, ip="203.0.113.8")
    lifecycle.request_stop(instance.pk, actor=team.member.user)
    lifecycle.mark_stopped(instance.pk)
    page = client_for(team.member.user).get(url("detail", instance.pk))
    text = page.text
    assert "Running at 203.0.113.8." in text and "Stop requested." in text
    assert ">Start</button>" in text
    assert ">Stop</button>" not in text and ">Reboot</button>" not in text
    assert 'Type <strong class="mono">' in text
    assert 'hx-trigger="every 15s"' in text  # settled: watched slowly, for changes made elsewhere


def test_the_detail_region_polls_while_in_transition(client_for, team, make_instance):
    instance = make_instance(State.STARTING)
    client = client_for(team.member.user)
    region = client.get(url("detail", instance.pk), headers={"HX-Request": "true"})
    assert "<html" not in region.text
    assert 'id="instance-live"' in region.text and 'hx-trigger="every 2s"' in region.text


def test_the_detail_page_shows_the_interruption_time(client_for, team, make_instance):
    from datetime import timedelta

    from django.utils import timezone

    at = (timezone.now() + timedelta(minutes=2)).replace(microsecond=0)
    instance = make_instance(State.RUNNING, preemptible=True, reclaim_at=at)
    page = client_for(team.member.user).get(url("detail", instance.pk))
    assert f"interruption at {at:%H:%M:%S}" in page.text


def test_the_detail_page_shows_the_price_the_cost_and_who_launched_it(
    client_for, team, make_instance
):
    from datetime import timedelta

    from django.utils import timezone

    on_demand = make_instance(
        State.RUNNING, running_since=timezone.now() - timedelta(hours=1, seconds=1)
    )
    preemptible = make_instance(State.STOPPED, preemptible=True, running_seconds=7200)
    client = client_for(team.owner.user)

    page = client.get(url("detail", on_demand.pk)).text
    assert "$2.49/hour (on-demand)" in page
    assert '<span data-amount>$2.49</span> <span class="faint">estimate</span>' in page
    assert f" by {team.member.user.display_name}</dd>" in page
    page = client.get(url("detail", preemptible.pk)).text
    assert "$1.29/hour (preemptible)" in page
    assert "<span data-amount>$2.58</span>" in page


def test_a_failed_instance_shows_why(client_for, team, make_instance):
    instance = make_instance(State.FAILED, state_reason="No free capacity for 1x H100 80GB.")
    page = client_for(team.member.user).get(url("detail", instance.pk))
    assert "No free capacity for 1x H100 80GB." in page.text
    assert 'data-testid="terminate"' not in page.text


# Actions


def test_stop_from_the_detail_page(
    client_for, team, make_instance, _no_broker, django_capture_on_commit_callbacks
):
    instance = make_instance(State.RUNNING)
    client = client_for(team.member.user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("action", instance.pk, "stop"), follow=True)
    assert response.redirect_chain[-1][0] == url("detail", instance.pk)
    assert f"Stopping {instance.name}" in response.text
    instance.refresh_from_db()
    assert instance.state == State.STOPPING
    assert _no_broker == [("stop", instance.pk)]


def test_an_illegal_action_is_refused_with_a_message(client_for, team, make_instance):
    instance = make_instance(State.STOPPED)
    response = client_for(team.member.user).post(url("action", instance.pk, "stop"), follow=True)
    assert "stop works on running instances" in response.text
    instance.refresh_from_db()
    assert instance.state == State.STOPPED


def test_terminate_needs_the_typed_name(
    client_for, team, make_instance, _no_broker, django_capture_on_commit_callbacks
):
    instance = make_instance(State.RUNNING)
    client = client_for(team.member.user)
    response = client.post(
        url("action", instance.pk, "terminate"), {"confirm_name": "wrong"}, follow=True
    )
    assert f"Type the instance&#x27;s name, {instance.name}, to confirm." in response.text
    instance.refresh_from_db()
    assert instance.state == State.RUNNING
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url("action", instance.pk, "terminate"), {"confirm_name": instance.name})
    instance.refresh_from_db()
    assert instance.state == State.TERMINATING
    assert _no_broker == [("terminate", instance.pk)]


def test_an_htmx_action_answers_with_a_client_redirect(client_for, team, make_instance):
    instance = make_instance(State.RUNNING)
    response = client_for(team.member.user).post(
        url("action", instance.pk, "reboot"), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == url("detail", instance.pk)


def test_an_unknown_action_is_refused(client_for, team, make_instance):
    instance = make_instance(State.RUNNING)
    response = client_for(team.member.user).post(url("action", instance.pk, "explode"), follow=True)
    assert "There is no action" in response.text


# Launching


def test_the_launch_page_shows_prices_capacity_and_quota(client_for, team, quota, ssh_key):
    capacity_snapshot_store(
        capacities=[
            Capacity("us-east-1", "gpu_1x_h100", "H100 80GB", 31, 32, 31),
            Capacity("eu-west-1", "gpu_1x_h100", "H100 80GB", 0, 8, 0),
        ]
    )
    page = client_for(team.member.user).get(url("launch"))
    text = page.text
    assert page.status_code == 200
    assert "$2.49/hour<br>" in text and "$1.29/hour preemptible" in text  # both prices
    # GPUs, with machines in brackets, for free capacity and quota alike.
    assert '31 GPUs free</span> <small class="muted">(31 machines)' in text
    assert '0 GPUs free</span> <small class="muted">(0 machines)' in text
    assert "quota 16 GPUs (16 machines)" in text
    assert "Free capacity as of" in text
    assert ssh_key.fingerprint in text
    assert 'name="idempotency_key"' in text


def test_the_launch_summary_is_an_htmx_region(client_for, team, catalog, quota, ssh_key):
    set_quota(team.organization, catalog.us_east, catalog.h100, on_demand=4)
    response = client_for(team.member.user).get(
        url("launch") + "?instance_type=gpu_8x_h100&region=us-east-1",
        headers={"HX-Request": "true"},
    )
    assert "<html" not in response.text
    assert 'id="launch-summary"' in response.text
    assert "$19.92" in response.text
    assert "your quota has 4 left" in response.text
    assert "/o/acme/quotas/requests/new/?region=us-east-1&amp;gpu=h100" in response.text


def test_the_summary_says_quota_and_free_capacity_in_the_same_unit(
    client_for, team, catalog, quota, ssh_key
):
    set_quota(team.organization, catalog.us_east, catalog.h100, on_demand=8)
    capacity_snapshot_store(capacities=[Capacity("us-east-1", "gpu_8x_h100", "H100 80GB", 0, 4, 0)])
    response = client_for(team.member.user).get(
        url("launch") + "?instance_type=gpu_8x_h100&region=us-east-1",
        headers={"HX-Request": "true"},
    )
    text = response.text
    assert '<dd data-testid="free-now">0 GPUs (0 machines)</dd>' in text
    assert '<dd data-testid="quota-left">8 GPUs (1 machine)</dd>' in text
    assert '<dd data-testid="launchable">0 machines now</dd>' in text
    assert "No free capacity for this type in us-east-1" in text


def test_the_only_ssh_key_is_chosen_already(client_for, team, catalog, quota, ssh_key):
    text = client_for(team.member.user).get(url("launch")).text
    assert f'value="{ssh_key.pk}" checked' in text


def test_launching_from_the_page(client_for, team, catalog, quota, ssh_key, _no_broker):
    client = client_for(team.member.user)
    response = client.post(url("launch"), _launch_data(catalog, ssh_key))
    instance = Instance.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("detail", instance.pk)
    assert instance.state == State.PENDING
    assert instance.created_by == team.member.user


def test_a_double_submit_of_the_form_makes_one_instance(client_for, team, catalog, quota, ssh_key):
    client = client_for(team.member.user)
    data = _launch_data(catalog, ssh_key)
    first = client.post(url("launch"), data)
    second = client.post(url("launch"), data)
    assert Instance.objects.count() == 1
    assert first["Location"] == second["Location"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": ""}, "Give the instance a name."),
        ({"name": "Bad Name!"}, "That name cannot be used"),
        ({"instance_type": "gpu_9x_nope"}, "There is no instance type"),
        ({"region": "mars-1"}, "There is no region"),
        ({"image": "ubuntu-18.04"}, "no longer available"),
        ({"ssh_keys": []}, "Choose at least one SSH key"),
        ({"region": "eu-west-1", "instance_type": "gpu_8x_h100"}, "is not offered in"),
    ],
)
def test_bad_input_on_the_launch_page_is_shown_and_nothing_is_made(
    client_for, team, catalog, quota, ssh_key, overrides, message
):
    response = client_for(team.member.user).post(
        url("launch"), _launch_data(catalog, ssh_key, **overrides)
    )
    assert response.status_code == 400
    assert message in response.text
    assert not Instance.objects.exists()


def test_a_launch_over_quota_links_to_the_quota_request_form(
    client_for, team, catalog, quota, ssh_key
):
    set_quota(team.organization, catalog.us_east, catalog.h100, on_demand=0)
    response = client_for(team.member.user).post(url("launch"), _launch_data(catalog, ssh_key))
    assert response.status_code == 400
    assert "your on-demand limit there is 0 GPUs" in response.text
    assert "/o/acme/quotas/requests/new/?region=us-east-1" in response.text
    assert "Request more quota" in response.text


def test_relaunch_prefills_the_form_from_an_ended_instance(
    client_for, team, make_instance, ssh_key, catalog
):
    source = make_instance(
        State.INTERRUPTED,
        preemptible=True,
        name="spot-1",
        ssh_keys=[{"name": "laptop", "fingerprint": ssh_key.fingerprint, "public_key": "x"}],
    )
    page = client_for(team.member.user).get(url("launch") + f"?from={source.pk}")
    text = page.text
    assert 'value="spot-1"' in text
    assert f'value="{ssh_key.pk}" checked' in text
    assert 'value="gpu_1x_h100" checked' in text
    assert re.search(r'<input type="checkbox" name="preemptible"[^>]* checked', text)


def test_pages_keep_polling_while_a_reclaim_is_announced(client_for, team, make_instance):
    from datetime import timedelta

    from django.utils import timezone

    instance = make_instance(
        State.RUNNING, preemptible=True, reclaim_at=timezone.now() + timedelta(minutes=2)
    )
    client = client_for(team.member.user)
    detail = client.get(url("detail", instance.pk), headers={"HX-Request": "true"})
    assert 'hx-trigger="every 2s"' in detail.text
    listing = client.get(url("list"), headers={"HX-Request": "true"})
    assert 'hx-trigger="every 2s"' in listing.text
    assert "interruption at" in listing.text


def test_a_running_preemptible_instance_is_watched_slowly_for_reclaim_notices(
    client_for, team, make_instance
):
    client = client_for(team.member.user)
    spot = make_instance(State.RUNNING, preemptible=True)
    assert 'hx-trigger="every 15s"' in client.get(url("detail", spot.pk)).text
    on_demand = make_instance(State.RUNNING)
    # Every running instance is watched slowly: a stop made elsewhere shows up.
    assert 'hx-trigger="every 15s"' in client.get(url("detail", on_demand.pk)).text
    ended = make_instance(State.TERMINATED)
    assert "hx-trigger" not in client.get(url("detail", ended.pk)).text


def test_launching_is_said_while_it_is_and_not_once_running(client_for, team, make_instance):
    client = client_for(team.member.user)
    instance = make_instance(State.PROVISIONING)
    assert "Launching…" in client.get(url("detail", instance.pk)).text
    instance.state = State.RUNNING
    instance.running_since = timezone.now()
    instance.save(update_fields=["state", "running_since"])
    swapped = client.get(url("detail", instance.pk), headers={"HX-Request": "true"}).text
    assert "Launching" not in swapped


def test_running_time_and_cost_count_on_in_the_page(client_for, team, make_instance):
    from datetime import timedelta

    instance = make_instance(State.RUNNING, running_since=timezone.now() - timedelta(seconds=90))
    text = client_for(team.member.user).get(url("detail", instance.pk)).text
    running = re.search(r'data-testid="running-time" data-ticking data-seconds="(\d+)"', text)
    assert running and 90 <= int(running.group(1)) < 100
    cost = r'data-testid="cost" data-ticking data-seconds="\d+" data-hourly="2\.49\d*"'
    assert re.search(cost, text)
    stopped = make_instance(State.STOPPED, running_seconds=3725)
    text = client_for(team.member.user).get(url("detail", stopped.pk)).text
    assert "data-ticking" not in text
    assert "1 h 2 min" in text


@pytest.mark.parametrize("source", ["\u00b2", "\u0661", "12345678901234567890123", "-1", "x"])
def test_launch_again_from_something_that_is_not_an_instance_number_is_a_400(
    client_for, team, source
):
    """ "²".isdigit() is true, and a huge number overflows the id column: both were a 500."""
    response = client_for(team.member.user).get(url("launch"), {"from": source})

    assert response.status_code == 400
    assert "not an instance number" in response.content.decode()


@pytest.mark.parametrize(
    ("fields", "hint"),
    [
        ({}, "as <code>ubuntu</code>."),
        ({"ssh_sudo": True}, "as <code>ubuntu</code>, who has sudo."),
        (
            {"ssh_user": "backfill", "ssh_port": 24933, "ssh_sudo": False},
            "as <code>backfill</code>, without sudo: the machine runs as a job",
        ),
    ],
)
def test_the_login_hint_is_what_the_backend_reported(client_for, team, make_instance, fields, hint):
    instance = make_instance(State.RUNNING, ip="127.0.0.1", **fields)
    text = client_for(team.member.user).get(url("detail", instance.pk)).text
    assert hint in text
    if fields.get("ssh_sudo") is False:
        assert "ssh -p 24933 backfill@127.0.0.1" in text
        assert "sudo." not in text.split('data-testid="login-hint"')[1][:300]
