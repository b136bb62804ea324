"""The notifications page: which e-mails come, and the time zone of times in pages and e-mails."""

from datetime import UTC, datetime

import pytest
from django.core import mail

from portal.audit.services import audit_record
from portal.notifications.services import notify
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

URL = "/account/notifications/"


def save(client, wanted, time_zone="UTC"):
    return client.post(URL, {"wanted": wanted, "time_zone": time_zone}, follow=True)


def test_every_category_comes_by_default_in_utc(client_for):
    client = client_for(UserFactory())

    page = client.get(URL).content.decode()

    assert page.count("checked") == 5
    assert "An instance is running, or failed to start" in page
    assert '<option value="UTC" selected>' in page
    assert "security" in page


def test_turning_instance_mail_off_stops_it_but_not_the_others(team, client_for, make_instance):
    creator = team.member.user
    client = client_for(creator)
    response = save(client, ["budget", "quotas", "reservations", "invoices"])
    assert "Saved." in response.content.decode()
    instance = make_instance(state="running", created_by=creator)

    notify("instance_running", instance_id=instance.pk)
    notify("instance_failed", instance_id=instance.pk)
    assert mail.outbox == []

    notify("instance_interrupted", instance_id=instance.pk)  # no category: always sent
    assert [m.to for m in mail.outbox] == [[creator.email]]
    assert 'value="instances"' in client.get(URL).content.decode()


def test_security_mail_always_comes(client_for):
    user = UserFactory()
    client = client_for(user)
    save(client, [])

    client.post(
        "/accounts/password/change/",
        {
            "oldpassword": PASSWORD,
            "password1": "another-long-passphrase-9",
            "password2": "another-long-passphrase-9",
        },
    )
    assert [m.subject for m in mail.outbox] == ["[Backfill] Your password was changed"]


def test_an_unknown_category_or_zone_is_refused_and_changes_nothing(client_for):
    user = UserFactory()
    client = client_for(user)

    response = save(client, ["instances", "spam"], time_zone="Mars/Olympus")

    page = response.content.decode()
    assert "is not one of the available choices" in page
    user.refresh_from_db()
    assert user.time_zone == ""
    assert page.count("checked") == 1  # what was posted is shown back, nothing saved
    assert client.get(URL).content.decode().count("checked") == 5


def test_times_in_e_mails_are_in_the_persons_time_zone(team, client_for, make_instance):
    creator = team.member.user
    save(client_for(creator), ["instances"], time_zone="Asia/Tokyo")
    instance = make_instance(state="running", created_by=creator)
    instance.reclaim_at = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)
    instance.save(update_fields=["reclaim_at"])

    notify("instance_reclaim_notice", instance_id=instance.pk)

    (message,) = mail.outbox
    assert "06:00:00 JST" in message.subject
    assert "06:00:00 JST" in message.body


def test_pages_show_times_in_the_persons_time_zone(team, client_for):
    client = client_for(team.owner.user)
    save(client, ["instances"], time_zone="Europe/Paris")
    audit_record(action="org.renamed", organization=team.organization, actor=team.owner)

    page = client.get("/o/acme/audit/").content.decode()

    assert "When (CET)" in page


def test_the_browser_tells_its_time_zone_once(client_for):
    user = UserFactory()
    client = client_for(user)
    page = client.get(URL).content.decode()
    assert 'src="/static/accounts/timezone.js"' in page

    assert client.post("/account/time-zone/", {"time_zone": "America/New_York"}).status_code == 204
    assert client.post("/account/time-zone/", {"time_zone": "Europe/Paris"}).status_code == 204

    user.refresh_from_db()
    assert user.time_zone == "America/New_York"  # the first answer stays; the page can change it
    assert "timezone.js" not in client.get(URL).content.decode()


def test_a_made_up_zone_from_the_browser_is_refused(client_for):
    user = UserFactory()
    client = client_for(user)

    response = client.post("/account/time-zone/", {"time_zone": "Nowhere/Land"})

    assert response.status_code == 400
    user.refresh_from_db()
    assert user.time_zone == ""


def test_the_pages_need_a_signed_in_person(client):
    assert client.get(URL)["Location"].startswith("/accounts/login/")
    assert client.post("/account/time-zone/", {"time_zone": "UTC"}).status_code == 302
    assert client.get("/account/time-zone/").status_code in (302, 405)
