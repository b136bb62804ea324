"""The state machine: every pair of states, legal or not, and what each transition does."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from portal.instances import lifecycle
from portal.instances.lifecycle import ACTIONS, STEPS, TRANSITIONS, IllegalTransition
from portal.instances.models import FINAL_STATES, Instance, State
from portal.quotas.models import Quota

ALL = [state.value for state in State]
PAIRS = [(a, b) for a in ALL for b in ALL if a != b]
LEGAL = [(a, b) for a, b in PAIRS if b in TRANSITIONS[a]]
# Nothing moves an instance back to pending (no step exists for it), so it is left out here.
ILLEGAL = [(a, b) for a, b in PAIRS if b not in TRANSITIONS[a] and b != State.PENDING]


def _step(instance_id, to):
    kwargs = {}
    if to == State.FAILED:
        kwargs = {"reason": "test failure"}
    return STEPS[to](instance_id, **kwargs)


def test_the_table_covers_every_state_and_final_states_lead_nowhere():
    assert set(TRANSITIONS) == set(ALL)
    assert set(STEPS) == set(ALL) - {State.PENDING}
    for state in FINAL_STATES:
        assert TRANSITIONS[state] == frozenset()
    # every state but pending can be reached, and every non-final state can be ended
    reachable = set().union(*TRANSITIONS.values())
    assert reachable == set(ALL) - {State.PENDING}
    for state in set(ALL) - FINAL_STATES:
        assert lifecycle.path(state, State.TERMINATED), state


@pytest.mark.parametrize(("from_state", "to_state"), LEGAL)
def test_a_legal_transition_is_applied_once_with_an_event(make_instance, from_state, to_state):
    instance = make_instance(from_state)
    change = _step(instance.pk, to_state)
    assert change is not None
    assert change.from_state == from_state
    instance.refresh_from_db()
    assert instance.state == to_state
    event = instance.events.get()
    assert (event.from_state, event.to_state) == (from_state, to_state)
    # Running the same step again (a retried task) is harmless: nothing changes.
    assert _step(instance.pk, to_state) is None
    assert instance.events.count() == 1


@pytest.mark.parametrize(("from_state", "to_state"), ILLEGAL)
def test_an_illegal_transition_is_refused_and_changes_nothing(make_instance, from_state, to_state):
    instance = make_instance(from_state)
    with pytest.raises(IllegalTransition) as refused:
        _step(instance.pk, to_state)
    assert instance.name in refused.value.message
    instance.refresh_from_db()
    assert instance.state == from_state
    assert not instance.events.exists()


@pytest.mark.parametrize("state", ALL)
def test_allowed_actions_follow_the_table(state):
    allowed = lifecycle.allowed_actions(state)
    for action, target in ACTIONS.items():
        assert (action in allowed) == (target in TRANSITIONS[state])
    if state in FINAL_STATES or state == State.TERMINATING:
        assert allowed == []


def test_the_refusal_says_what_the_action_needs(make_instance):
    instance = make_instance(State.STOPPED)
    assert lifecycle.refusal(instance, "stop") == (
        f"You cannot stop {instance.name} while it is stopped; stop works on running instances."
    )


def test_catch_up_walks_through_allowed_states(make_instance):
    instance = make_instance(State.RUNNING)
    changes = lifecycle.catch_up(instance.pk, State.STOPPED, message="missed")
    assert [c.instance.state for c in changes] == [State.STOPPING, State.STOPPED]
    assert lifecycle.catch_up(instance.pk, State.PROVISIONING, message="no way back") == []


def test_quota_is_released_exactly_once_on_the_final_state(launch, team, catalog):
    instance = launch()
    quota = Quota.objects.get(
        organization=team.organization, region=catalog.us_east, gpu_model=catalog.h100
    )
    assert quota.on_demand_used == 1
    lifecycle.mark_provisioning(instance.pk)
    lifecycle.mark_running(instance.pk, ip="203.0.113.9")
    lifecycle.request_terminate(instance.pk)
    lifecycle.mark_terminated(instance.pk)
    lifecycle.mark_terminated(instance.pk)
    quota.refresh_from_db()
    assert quota.on_demand_used == 0
    instance.refresh_from_db()
    assert instance.quota_released_at is not None
    assert instance.ip is None
    assert instance.terminated_at is not None


@pytest.mark.parametrize("final", [State.FAILED, State.INTERRUPTED])
def test_failed_and_interrupted_release_the_quota_too(launch, team, catalog, final):
    instance = launch(preemptible=True)
    quota = Quota.objects.get(
        organization=team.organization, region=catalog.us_east, gpu_model=catalog.h100
    )
    assert quota.preemptible_used == 1
    lifecycle.mark_provisioning(instance.pk)
    _step(instance.pk, final)
    quota.refresh_from_db()
    assert quota.preemptible_used == 0


def test_billing_counts_running_and_rebooting_seconds_only(make_instance):
    instance = make_instance(State.PROVISIONING)
    start = timezone.now() - timedelta(hours=3)
    lifecycle.mark_running(instance.pk, ip="203.0.113.1", at=start)
    Instance.objects.filter(pk=instance.pk).update(running_since=start)
    lifecycle.request_reboot(instance.pk)
    lifecycle.mark_running(instance.pk)
    lifecycle.request_stop(instance.pk)
    instance.refresh_from_db()
    assert instance.running_since is None
    assert 3 * 3600 - 5 <= instance.running_seconds <= 3 * 3600 + 5
    lifecycle.mark_stopped(instance.pk)
    later = timezone.now() + timedelta(hours=1)
    assert instance.billed_seconds(later) == instance.running_seconds


def test_interrupted_stops_billing_at_the_reclaim_second(make_instance):
    start = timezone.now() - timedelta(minutes=10)
    instance = make_instance(State.RUNNING, preemptible=True, running_since=start)
    reclaimed = start + timedelta(minutes=4)
    lifecycle.mark_interrupted(instance.pk, at=reclaimed)
    instance.refresh_from_db()
    assert instance.running_seconds == 240
    assert instance.terminated_at == reclaimed


def test_the_running_email_goes_out_once_with_the_ssh_command(
    make_instance, team, django_capture_on_commit_callbacks, eager
):
    instance = make_instance(State.PROVISIONING, backend_id="m-1")
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.mark_running(instance.pk, ip="203.0.113.7")
        lifecycle.mark_running(instance.pk, ip="203.0.113.7")
        lifecycle.request_reboot(instance.pk)
        lifecycle.mark_running(instance.pk)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [team.member.user.email]
    assert f"{instance.name} is running" in message.subject
    assert "ssh ubuntu@203.0.113.7" in message.body


def test_the_failed_email_carries_the_reason(
    make_instance, django_capture_on_commit_callbacks, eager
):
    instance = make_instance(State.PROVISIONING)
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.mark_failed(instance.pk, reason="No free capacity for 1x H100 80GB.")
    (message,) = mail.outbox
    assert "failed" in message.subject
    assert "No free capacity for 1x H100 80GB." in message.body


def test_a_reclaim_notice_is_recorded_and_emailed_once_then_interrupted_says_how_to_relaunch(
    make_instance, django_capture_on_commit_callbacks, eager
):
    instance = make_instance(State.RUNNING, preemptible=True)
    at = timezone.now().replace(microsecond=0) + timedelta(minutes=2)
    with django_capture_on_commit_callbacks(execute=True):
        assert lifecycle.note_reclaim(instance.pk, reclaim_at=at)
        assert not lifecycle.note_reclaim(instance.pk, reclaim_at=at)
    (notice,) = mail.outbox
    assert f"interrupted at {at:%H:%M:%S}" in notice.subject
    instance.refresh_from_db()
    assert instance.reclaim_at == at
    assert instance.state == State.RUNNING
    assert instance.events.get().message.startswith("The operator will reclaim")

    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.mark_interrupted(instance.pk, at=timezone.now())
    interrupted = mail.outbox[1]
    assert "was interrupted" in interrupted.subject
    assert f"/instances/launch/?from={instance.pk}" in interrupted.body


def test_the_email_goes_to_the_owners_when_the_launcher_left(
    make_instance, team, django_capture_on_commit_callbacks, eager
):
    instance = make_instance(State.PROVISIONING)
    team.member.delete()
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.mark_failed(instance.pk, reason="gone")
    assert [m.to for m in mail.outbox] == [[team.owner.user.email]]
