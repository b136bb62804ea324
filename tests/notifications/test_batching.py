"""Many instances of one person running together make one e-mail, not one per instance."""

import pytest
from django.core import mail
from django.db import transaction

from portal.instances import lifecycle
from portal.notifications import delivery
from portal.notifications.models import Notification
from portal.notifications.services import notify

pytestmark = pytest.mark.django_db


def test_instances_running_together_make_one_summary_e_mail(
    team, make_instance, django_capture_on_commit_callbacks
):
    creator = team.member.user
    first = make_instance(state="provisioning", created_by=creator, name="trainer-a")
    second = make_instance(state="provisioning", created_by=creator, name="trainer-b")
    third = make_instance(state="provisioning", created_by=creator, name="trainer-c")

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        for instance in (first, second, third):
            lifecycle.mark_running(instance.pk, ip="203.0.113.9")

    (message,) = mail.outbox
    assert message.to == [creator.email]
    assert message.subject == "[Backfill] 3 instances are running in Acme AI"
    for name in ("trainer-a", "trainer-b", "trainer-c"):
        assert f"- {name} (1x H100 80GB in us-east-1)" in message.body
    assert "Open the instance list" in message.alternatives[0][0]
    rows = Notification.objects.filter(kind="instance_running").order_by("pk")
    assert all(row.sent_at for row in rows)
    assert [row.batched_into_id for row in rows] == [None, rows[0].pk, rows[0].pk]


def test_one_instance_running_gets_its_own_e_mail(
    team, make_instance, django_capture_on_commit_callbacks
):
    instance = make_instance(state="provisioning", created_by=team.member.user, name="solo")

    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.mark_running(instance.pk, ip="203.0.113.9")

    (message,) = mail.outbox
    assert message.subject == "[Backfill] solo is running"


def test_different_people_are_not_batched_together(
    team, make_instance, django_capture_on_commit_callbacks
):
    mine = make_instance(state="provisioning", created_by=team.member.user, name="mine")
    theirs = make_instance(state="provisioning", created_by=team.admin.user, name="theirs")

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        lifecycle.mark_running(mine.pk, ip="203.0.113.9")
        lifecycle.mark_running(theirs.pk, ip="203.0.113.10")

    assert sorted(m.subject for m in mail.outbox) == [
        "[Backfill] mine is running",
        "[Backfill] theirs is running",
    ]


def test_a_batched_e_mail_waits_for_the_rest_of_its_batch(team, make_instance, monkeypatch):
    monkeypatch.setattr("portal.notifications.services._after_commit", lambda callback: None)
    instance = make_instance(state="running", created_by=team.member.user)

    row = notify("instance_running", instance_id=instance.pk, batch="k", wait=5)

    assert 4 < delivery.seconds_until_due(row.pk) <= 5
    assert row.pk not in delivery.notifications_due()


def test_a_batch_enqueues_one_delayed_send_that_takes_the_others(
    team, make_instance, django_capture_on_commit_callbacks, monkeypatch
):
    """Outside eager mode, only the batch's first row is enqueued, for when it is due; its
    delivery takes the rows that came meanwhile (no task per row that would find it sent)."""
    from portal.notifications import services

    sent = []
    monkeypatch.setattr(services, "_sent_at_once", lambda: False)
    monkeypatch.setattr(
        services, "_enqueue", lambda pk, countdown=None: sent.append((pk, countdown))
    )
    creator = team.member.user
    instances = [
        make_instance(state="provisioning", created_by=creator, name=f"trainer-{i}")
        for i in range(3)
    ]
    for instance in instances:
        with django_capture_on_commit_callbacks(execute=True):
            lifecycle.mark_running(instance.pk, ip="203.0.113.9")

    rows = list(Notification.objects.filter(kind="instance_running").order_by("pk"))
    assert sent == [(rows[0].pk, lifecycle.RUNNING_MAIL_WAIT_SECONDS)]
    assert delivery.notification_deliver(rows[0].pk) == "sent"
    (message,) = mail.outbox
    assert message.subject == "[Backfill] 3 instances are running in Acme AI"
    assert all(row.sent_at for row in Notification.objects.filter(kind="instance_running"))


def test_instances_running_in_one_step_queue_their_e_mails_in_one_insert_and_one_count(
    team, make_instance, django_capture_on_commit_callbacks, monkeypatch
):
    """A provisioning run brings many up at once: per person, one INSERT of their rows and
    one delayed send (the batch counted once), which takes them all as one summary."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal.notifications import services

    sent = []
    monkeypatch.setattr(services, "_sent_at_once", lambda: False)
    monkeypatch.setattr(
        services, "_enqueue", lambda pk, countdown=None: sent.append((pk, countdown))
    )
    mine = [
        make_instance(state="provisioning", created_by=team.member.user, name=f"mine-{i}")
        for i in range(3)
    ]
    theirs = make_instance(state="provisioning", created_by=team.admin.user, name="theirs")

    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks(execute=True),
    ):
        lifecycle.mark_running_many({i.pk: "203.0.113.9" for i in [*mine, theirs]})

    wait = lifecycle.RUNNING_MAIL_WAIT_SECONDS
    inserts = [q for q in queries if q["sql"].startswith('INSERT INTO "notifications_')]
    assert len(inserts) == 2  # one per person
    rows = list(Notification.objects.filter(kind="instance_running").order_by("pk"))
    assert len(rows) == 4
    assert sorted(sent) == sorted(
        [
            (next(r.pk for r in rows if r.params["instance_id"] == mine[0].pk), wait),
            (next(r.pk for r in rows if r.params["instance_id"] == theirs.pk), wait),
        ]
    )
    for pk, _countdown in sent:
        assert delivery.notification_deliver(pk) == "sent"
    assert sorted(m.subject for m in mail.outbox) == [
        "[Backfill] 3 instances are running in Acme AI",
        "[Backfill] theirs is running",
    ]


def test_the_summary_reads_its_instances_and_who_to_tell_in_one_query(
    team, make_instance, django_assert_num_queries
):
    from portal.instances.emails import instances_running

    creator = team.member.user
    made = [
        make_instance(state="running", created_by=creator, name=f"trainer-{i}") for i in range(3)
    ]

    with django_assert_num_queries(1):
        (email,) = instances_running([{"instance_id": i.pk} for i in made])

    assert email.to == [creator.email]
    assert email.context["count"] == 3


def test_the_summary_goes_to_the_owners_when_the_launcher_has_left(
    team, make_instance, django_capture_on_commit_callbacks
):
    from portal.instances.emails import instances_running

    made = [
        make_instance(state="running", created_by=team.member.user, name=f"trainer-{i}")
        for i in range(2)
    ]
    team.member.delete()

    (email,) = instances_running([{"instance_id": i.pk} for i in made])

    assert email.to == [team.owner.user.email]
