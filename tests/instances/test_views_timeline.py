"""The instance page's timeline (read in plain SQL) is the instance's events, newest first,
each with who made it as the user's display name, and a new event shows on the next view."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from portal.instances import selectors
from portal.instances.models import InstanceEvent, State


def _as_shown(events) -> list[tuple]:
    return [
        (event.pk, event.at, event.from_state, event.to_state, event.message) for event in events
    ]


def test_the_timeline_is_the_events_newest_first_with_who_made_each(team, make_instance):
    instance = make_instance(State.RUNNING)
    at = timezone.now() - timedelta(hours=1)
    team.member.user.full_name = ""  # no name: the e-mail address is shown
    team.member.user.save(update_fields=["full_name"])
    made = [
        InstanceEvent.objects.create(instance=instance, at=at, to_state=State.PENDING),
        InstanceEvent.objects.create(  # the same second: the later id first
            instance=instance, at=at, to_state=State.PROVISIONING, actor=team.owner.user
        ),
        InstanceEvent.objects.create(
            instance=instance,
            at=at + timedelta(minutes=5),
            message="Reclaim <notice>",
            actor=team.member.user,
        ),
    ]
    InstanceEvent.objects.create(instance=make_instance(State.RUNNING), message="another's")

    timeline = selectors.instance_timeline(instance=instance)

    expected = list(selectors.instance_event_list_for_instance(instance=instance))
    assert _as_shown(timeline) == _as_shown(expected)
    assert [event.pk for event in timeline] == [made[2].pk, made[1].pk, made[0].pk]
    assert [event.actor_name for event in timeline] == [
        event.actor.display_name if event.actor else None for event in expected
    ]
    assert timeline[0].actor_name == team.member.user.email
    assert timeline[1].actor_name == team.owner.user.display_name != team.owner.user.email
    assert timeline[1].get_to_state_display() == "Provisioning"


def test_the_page_shows_the_timeline_and_a_new_event_at_once(client_for, team, make_instance):
    instance = make_instance(State.RUNNING)
    client = client_for(team.member.user)
    url = reverse("instances:detail", args=["acme", instance.pk])
    assert "Stop asked" not in client.get(url).text

    InstanceEvent.objects.create(instance=instance, message="Stop asked", actor=team.owner.user)

    page = client.get(url).text
    assert "Stop asked" in page
    assert f'<span class="faint">— {team.owner.user.display_name}</span>' in page
