"""Suspending an organization: launches refused on the web and the API, instances optionally
stopped, owners e-mailed, twice refused; lifting restores everything."""

import json

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from portal.api.services import api_token_create
from portal.audit.models import ActorKind, AuditEntry
from portal.instances.models import Instance, State
from portal.lib.errors import ApplicationError
from portal.orgs import services
from portal.orgs.models import Suspension
from portal.orgs.selectors import organization_suspension_reason
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

REASON = "Payment fraud under review (case 7731)."


@pytest.fixture(autouse=True)
def _no_tasks(monkeypatch):
    sent = []
    for name in ("provision", "stop", "start", "reboot", "terminate"):
        monkeypatch.setattr(
            f"portal.instances.tasks.enqueue_{name}", lambda pk, n=name: sent.append((n, pk))
        )
    return sent


def suspend(team, staff, **kwargs):
    return services.organization_suspend(
        organization=team.organization, reason=REASON, by=staff, **kwargs
    )


def test_suspending_blocks_launches_and_mails_the_owners(
    team, staff, launch, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        suspension = suspend(team, staff)
    assert organization_suspension_reason(team.organization).endswith(REASON)
    with pytest.raises(ApplicationError) as refused:
        launch("train-1")
    assert refused.value.code == "suspended" and REASON in refused.value.message
    assert not Instance.objects.exists()

    assert [m.to for m in mail.outbox] == [[team.owner.user.email]]
    assert REASON in mail.outbox[0].body and "suspended" in mail.outbox[0].subject
    entry = AuditEntry.objects.get(action="org.suspended")
    assert (entry.actor_kind, entry.actor_user, entry.target_id) == (
        ActorKind.STAFF,
        staff,
        str(team.organization.pk),
    )
    assert suspension.is_active


def test_the_launch_page_says_why(team, staff, client_for, catalog, quota, ssh_key):
    suspend(team, staff)
    client = client_for(team.member.user)
    response = client.post(
        reverse("instances:launch", args=[team.organization.slug]),
        {
            "name": "train-1",
            "instance_type": catalog.h100_1x.code,
            "region": catalog.us_east.code,
            "image": catalog.ubuntu.code,
            "ssh_keys": [ssh_key.pk],
        },
    )
    assert REASON in response.content.decode()
    assert not Instance.objects.exists()


def test_suspending_twice_is_refused_and_changes_nothing(team, staff):
    first = suspend(team, staff)
    mail.outbox.clear()
    with pytest.raises(ApplicationError) as refused:
        services.organization_suspend(
            organization=team.organization, reason="Another reason.", by=staff
        )
    assert "already suspended" in refused.value.message
    assert list(Suspension.objects.values_list("pk", "reason")) == [(first.pk, REASON)]
    assert AuditEntry.objects.filter(action="org.suspended").count() == 1
    assert mail.outbox == []


@pytest.mark.parametrize(("reason", "by_staff"), [("", True), ("   ", True), (REASON, False)])
def test_bad_suspensions_change_nothing(team, staff, reason, by_staff):
    with pytest.raises(ApplicationError):
        services.organization_suspend(
            organization=team.organization,
            reason=reason,
            by=staff if by_staff else team.owner.user,
        )
    assert not Suspension.objects.exists()


def test_stop_instances_stops_every_running_one(team, staff, make_instance, _no_tasks):
    running = make_instance(State.RUNNING)
    rebooting = make_instance(State.REBOOTING)
    stopped = make_instance(State.STOPPED)
    suspend(team, staff, stop_instances=True)
    states = dict(Instance.objects.values_list("pk", "state"))
    assert states == {
        running.pk: State.STOPPING,
        rebooting.pk: State.REBOOTING,  # the lifecycle cannot stop it mid-reboot
        stopped.pk: State.STOPPED,
    }
    stops = AuditEntry.objects.filter(action="instance.action")
    assert {e.actor_kind for e in stops} == {ActorKind.STAFF} and stops.count() == 1


def test_lifting_restores_launches_and_mails_the_owners(
    team, staff, launch, django_capture_on_commit_callbacks
):
    suspend(team, staff)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.organization_unsuspend(organization=team.organization, by=staff, note="Cleared.")
    assert organization_suspension_reason(team.organization) is None
    assert launch("train-1").state == State.PENDING
    assert len(mail.outbox) == 1 and "lifted" in mail.outbox[0].subject
    assert AuditEntry.objects.filter(action="org.unsuspended", actor_kind="staff").count() == 1
    with pytest.raises(ApplicationError, match="not suspended"):
        services.organization_unsuspend(organization=team.organization, by=staff)


def test_api_tokens_are_refused_while_suspended(team, staff, catalog, quota, ssh_key):
    _token, value = api_token_create(membership=team.member, name="ci", scope="read_write")
    client = Client(headers={"Authorization": f"Bearer {value}"})
    assert client.get("/api/v1/instances/").status_code == 200

    suspend(team, staff)
    response = client.get("/api/v1/instances/")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "organization_suspended" and REASON in error["message"]
    launch = client.post(
        "/api/v1/instances/",
        json.dumps(
            {
                "name": "x",
                "instance_type": catalog.h100_1x.code,
                "region": catalog.us_east.code,
                "image": catalog.ubuntu.code,
                "ssh_key_ids": [ssh_key.pk],
            }
        ),
        content_type="application/json",
    )
    assert launch.status_code == 403 and not Instance.objects.exists()

    services.organization_unsuspend(organization=team.organization, by=staff)
    assert client.get("/api/v1/instances/").status_code == 200


def test_an_api_launch_is_audited_as_the_token(team, catalog, quota, ssh_key):
    token, value = api_token_create(membership=team.member, name="ci", scope="read_write")
    client = Client(headers={"Authorization": f"Bearer {value}"})
    response = client.post(
        "/api/v1/instances/",
        json.dumps(
            {
                "name": "from-ci",
                "instance_type": catalog.h100_1x.code,
                "region": catalog.us_east.code,
                "image": catalog.ubuntu.code,
                "ssh_key_ids": [ssh_key.pk],
            }
        ),
        content_type="application/json",
        REMOTE_ADDR="198.51.100.9",
    )
    assert response.status_code == 201, response.content
    entry = AuditEntry.objects.get(action="instance.launched")
    assert (entry.actor_kind, entry.actor_token_id, entry.actor_label, entry.ip) == (
        ActorKind.API_TOKEN,
        token.pk,
        "ci",
        "198.51.100.9",
    )
    assert entry.actor_user == team.member.user


def test_other_organizations_are_not_touched(team, staff, outsider):
    suspend(team, staff)
    assert organization_suspension_reason(outsider.organization) is None


def test_admin_suspend_form_and_twice(team, staff, client):
    client.force_login(staff)
    url = reverse("admin:orgs_suspension_suspend")
    form = {"organization": team.organization.pk, "reason": REASON}
    assert client.post(url, form).status_code == 302
    again = client.post(url, {**form, "reason": "Again."})
    assert again.status_code == 200
    assert "already suspended" in again.content.decode()
    assert Suspension.objects.count() == 1
    # The organizations list offers the action.
    changelist = client.get(reverse("admin:orgs_organization_changelist")).content.decode()
    assert "suspend_organization" in changelist


def test_staff_terminate_with_a_reason_from_the_admin_action(team, staff, client, make_instance):
    instance = make_instance(State.RUNNING)
    client.force_login(staff)
    url = reverse("admin:instances_instance_changelist")
    data = {"action": "terminate_with_reason", "_selected_action": [instance.pk]}
    page = client.post(url, data)
    assert page.status_code == 200 and "Terminate with a reason" in page.content.decode()
    done = client.post(url, {**data, "apply": "1", "reason": "Abuse report #12."})
    assert done.status_code == 302
    instance.refresh_from_db()
    assert instance.state == State.TERMINATING
    assert instance.state_reason == "Terminated by the operator: Abuse report #12."


def test_a_member_of_two_organizations_launches_in_the_other(team, staff, outsider):
    MembershipFactory(organization=outsider.organization, user=team.member.user)
    suspend(team, staff)
    assert organization_suspension_reason(outsider.organization) is None


def test_lifting_from_the_admin_list(team, staff, client):
    suspension = suspend(team, staff)
    client.force_login(staff)
    listing = client.get(reverse("admin:orgs_suspension_changelist")).content.decode()
    lift_url = reverse("admin:orgs_suspension_lift", args=[suspension.pk])
    assert lift_url in listing
    assert client.post(lift_url, {"note": "Paid."}).status_code == 302
    suspension.refresh_from_db()
    assert suspension.lifted_at is not None and suspension.lift_note == "Paid."
    again = client.post(lift_url, {"note": ""})
    assert again.status_code == 200 and "is not suspended" in again.content.decode()
