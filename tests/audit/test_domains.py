"""Every audited action of the other domains writes its entry, with the right actor.

Actors: a user (customer), operator staff (admin), the system (a task or a rule, named in the
label) and an API token (the token of the request being served, see portal.audit.middleware).
"""

from datetime import UTC, datetime
from decimal import Decimal
from unittest.mock import patch

import pytest
from django.urls import reverse

from portal.audit.middleware import _current_request
from portal.audit.models import ActorKind, AuditEntry
from portal.billing import services as billing
from portal.billing.periods import Month
from portal.instances import lifecycle
from portal.instances import services as instances
from portal.instances.models import State
from portal.quotas import services as quotas
from portal.quotas.models import AutoApprovalRule, Kind
from portal.sshkeys import services as sshkeys
from portal.sshkeys.models import SshKey
from tests.audit.conftest import IP
from tests.billing.conftest import timeline
from tests.instances import conftest as instance_fixtures
from tests.sshkeys.factories import SshKeyFactory

# The instances app's fixtures: its catalog (the simulator's codes), quota, a key, launches.
catalog = instance_fixtures.catalog
quota = instance_fixtures.quota
ssh_key = instance_fixtures.ssh_key
launch = instance_fixtures.launch
make_instance = instance_fixtures.make_instance

PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl laptop"
)


@pytest.fixture(autouse=True)
def _no_tasks(monkeypatch):
    """Services enqueue tasks on commit; none should run here."""
    for name in ("provision", "stop", "start", "reboot", "terminate"):
        monkeypatch.setattr(f"portal.instances.tasks.enqueue_{name}", lambda pk: None)


def _assert_actor(entry: AuditEntry, kind: str, user=None, label: str | None = None) -> None:
    assert entry.actor_kind == kind
    assert entry.actor_user == user
    if label is not None:
        assert entry.actor_label == label


# --- SSH keys -----------------------------------------------------------------------------------


def test_adding_and_deleting_a_key_through_the_page_records_the_member_and_ip(
    team, client_for, only
):
    client = client_for(team.member.user)
    slug = team.organization.slug
    response = client.post(
        reverse("sshkeys:list", args=[slug]),
        {"name": "laptop", "public_key": PUBLIC_KEY},
        REMOTE_ADDR=IP,
    )
    assert response.status_code in (200, 302)
    key = SshKey.objects.get()
    added = only("sshkey.added")
    _assert_actor(added, ActorKind.USER, team.member.user)
    assert (added.organization, added.target_id, added.ip) == (team.organization, str(key.pk), IP)
    assert added.detail["fingerprint"] == key.fingerprint

    client.post(reverse("sshkeys:delete", args=[slug, key.pk]), REMOTE_ADDR=IP)
    assert not SshKey.objects.exists()
    deleted = only("sshkey.deleted")
    _assert_actor(deleted, ActorKind.USER, team.member.user)
    assert deleted.target_label.startswith("laptop (SHA256:") and deleted.ip == IP


def test_a_refused_key_writes_nothing(team):
    with pytest.raises(Exception):  # noqa: B017 - any refusal
        sshkeys.sshkey_add(membership=team.member, name="bad", public_key="nope", shared=False)
    assert not AuditEntry.objects.filter(action__startswith="sshkey.").exists()


def test_an_api_token_acting_for_its_member_is_the_actor(team, rf, only):
    """The API authenticates a token whose `user` is the member; the services pass the member."""
    token = SshKeyFactory(membership=team.member, name="ci-token")  # any model with user and name
    request = rf.post("/api/v1/ssh-keys/", REMOTE_ADDR=IP)
    request.user, request.auth = team.member.user, token
    reset = _current_request.set(request)
    try:
        key = sshkeys.sshkey_add(
            membership=team.member, name="deploy", public_key=PUBLIC_KEY, shared=False
        )
    finally:
        _current_request.reset(reset)
    entry = only("sshkey.added")
    _assert_actor(entry, ActorKind.API_TOKEN, team.member.user, "ci-token")
    assert (entry.actor_token_id, entry.ip, entry.target_id) == (token.pk, IP, str(key.pk))


def test_a_token_of_someone_else_does_not_take_over(team, rf, only):
    token = SshKeyFactory(membership=team.owner, name="owner-token")
    request = rf.post("/", REMOTE_ADDR=IP)
    request.user, request.auth = team.owner.user, token
    reset = _current_request.set(request)
    try:
        sshkeys.sshkey_add(
            membership=team.member, name="deploy", public_key=PUBLIC_KEY, shared=False
        )
    finally:
        _current_request.reset(reset)
    _assert_actor(only("sshkey.added"), ActorKind.USER, team.member.user)


# --- Instances ----------------------------------------------------------------------------------


def test_a_launch_records_the_member(launch, team, only):
    instance = launch("train-1")
    entry = only("instance.launched")
    _assert_actor(entry, ActorKind.USER, team.member.user)
    assert entry.target_id == str(instance.pk)
    assert entry.detail == {
        "instance_type": "gpu_1x_h100",
        "region": "us-east-1",
        "gpus": 1,
        "preemptible": False,
    }


def test_a_customer_action_records_the_action_and_the_state_change(make_instance, team):
    instance = make_instance(State.RUNNING)
    instances.instance_stop(membership=team.member, instance=instance)
    action = AuditEntry.objects.get(action="instance.action")
    _assert_actor(action, ActorKind.USER, team.member.user)
    assert action.detail == {"action": "stop"}
    change = AuditEntry.objects.get(action="instance.state_changed")
    _assert_actor(change, ActorKind.USER, team.member.user)
    assert (change.detail["from"], change.detail["to"]) == ("running", "stopping")


def test_asking_twice_records_once(make_instance, team):
    instance = make_instance(State.RUNNING)
    instances.instance_stop(membership=team.member, instance=instance)
    instances.instance_stop(membership=team.member, instance=instance)
    assert AuditEntry.objects.filter(action="instance.action").count() == 1
    assert AuditEntry.objects.filter(action="instance.state_changed").count() == 1


def test_a_refused_action_records_nothing(make_instance, team):
    instance = make_instance(State.TERMINATED)
    with pytest.raises(lifecycle.IllegalTransition):
        instances.instance_stop(membership=team.member, instance=instance)
    assert not AuditEntry.objects.filter(action__startswith="instance.").exists()


def test_every_transition_function_records_one_system_entry(make_instance):
    instance = make_instance(State.PENDING)
    steps = [
        (lifecycle.mark_provisioning, {}),
        (lifecycle.mark_running, {"ip": "198.51.100.4"}),
        (lifecycle.request_reboot, {}),
        (lifecycle.mark_running, {}),
        (lifecycle.request_stop, {}),
        (lifecycle.mark_stopped, {}),
        (lifecycle.request_start, {}),
        (lifecycle.mark_running, {}),
        (lifecycle.request_terminate, {}),
        (lifecycle.mark_terminated, {}),
    ]
    for step, kwargs in steps:
        step(instance.pk, **kwargs)
    failed = make_instance(State.PROVISIONING)
    lifecycle.mark_failed(failed.pk, reason="Boot failed.")
    spot = make_instance(State.RUNNING, preemptible=True)
    lifecycle.mark_interrupted(spot.pk)

    entries = list(AuditEntry.objects.filter(action="instance.state_changed").order_by("id"))
    assert [(e.detail["from"], e.detail["to"]) for e in entries] == [
        ("pending", "provisioning"),
        ("provisioning", "running"),
        ("running", "rebooting"),
        ("rebooting", "running"),
        ("running", "stopping"),
        ("stopping", "stopped"),
        ("stopped", "starting"),
        ("starting", "running"),
        ("running", "terminating"),
        ("terminating", "terminated"),
        ("provisioning", "failed"),
        ("running", "interrupted"),
    ]
    for entry in entries:
        _assert_actor(entry, ActorKind.SYSTEM, None, "backfill")  # no task runs them here


def test_a_transition_run_by_a_task_names_the_task(make_instance):
    instance = make_instance(State.PENDING)

    class Task:
        name = "portal.instances.tasks.instance_provision"

    with patch("celery.current_task", Task()):
        lifecycle.mark_provisioning(instance.pk)
    entry = AuditEntry.objects.get(action="instance.state_changed")
    _assert_actor(entry, ActorKind.SYSTEM, None, "portal.instances.tasks.instance_provision")


def test_staff_terminate_with_a_reason_the_customer_sees(
    make_instance, team, client_for, django_user_model
):
    staff = django_user_model.objects.create_user(
        email="ops@backfill.example", password="x", is_staff=True
    )
    instance = make_instance(State.RUNNING)
    instances.instance_terminate_by_staff(
        user=staff, instance=instance, reason="Abuse report #42: crypto mining."
    )
    lifecycle.mark_terminated(instance.pk)
    action = AuditEntry.objects.get(action="instance.action")
    _assert_actor(action, ActorKind.STAFF, staff)
    assert action.detail["reason"] == "Terminated by the operator: Abuse report #42: crypto mining."
    changes = AuditEntry.objects.filter(action="instance.state_changed").order_by("id")
    assert [c.actor_kind for c in changes] == [ActorKind.STAFF, ActorKind.SYSTEM]

    page = client_for(team.viewer.user).get(
        reverse("instances:detail", args=[team.organization.slug, instance.pk])
    )
    assert "Terminated by the operator: Abuse report #42: crypto mining." in page.content.decode()


# --- Quotas -------------------------------------------------------------------------------------


@pytest.fixture
def staff(django_user_model, db):
    return django_user_model.objects.create_user(
        email="ops@backfill.example", password="x", is_staff=True
    )


def _submit(team, catalog, limit=16):
    return quotas.quota_request_submit(
        membership=team.owner,
        region=catalog.us_east,
        gpu_model=catalog.h100,
        kind=Kind.ON_DEMAND,
        requested_limit=limit,
        justification="Training run.",
    )


def test_a_request_and_a_staff_decision(team, catalog, staff, only):
    request = _submit(team, catalog)
    submitted = only("quota.request_submitted")
    _assert_actor(submitted, ActorKind.USER, team.owner.user)
    assert submitted.detail == {"kind": "on_demand", "from": 0, "requested": 16}

    quotas.quota_request_decide(
        quota_request=request, decision=quotas.Decision.APPROVE, granted_limit=8, decided_by=staff
    )
    decided = only("quota.decided")
    _assert_actor(decided, ActorKind.STAFF, staff)
    assert decided.detail == {"decision": "approve", "state": "partly_approved", "granted": 8}
    changed = only("quota.limit_changed")
    _assert_actor(changed, ActorKind.STAFF, staff)
    assert (changed.detail["from"], changed.detail["to"]) == (0, 8)


def test_a_rule_decides_as_the_system(team, catalog, only):
    AutoApprovalRule.objects.create(
        name="Small H100",
        gpu_model=catalog.h100,
        max_limit=32,
        require_verified_email=False,
        require_no_unpaid_invoice=False,
    )
    _submit(team, catalog)
    _assert_actor(only("quota.decided"), ActorKind.SYSTEM, None, "automatic rule “Small H100”")
    rule = "automatic rule “Small H100”"
    _assert_actor(only("quota.limit_changed"), ActorKind.SYSTEM, None, rule)


def test_a_limit_set_in_admin_records_staff_and_ip(team, catalog, staff, client, only):
    client.force_login(staff)
    staff.is_superuser = True
    staff.save()
    quotas.quota_limit_set(
        organization=team.organization,
        region=catalog.us_east,
        gpu_model=catalog.h100,
        kind=Kind.PREEMPTIBLE,
        limit=4,
        reason="Pilot.",
        changed_by=staff,
    )
    entry = only("quota.limit_changed")
    _assert_actor(entry, ActorKind.STAFF, staff)
    assert entry.detail == {"kind": "preemptible", "from": 0, "to": 4, "reason": "Pilot."}


# --- Billing ------------------------------------------------------------------------------------


@pytest.fixture
def march(team, make_instance):
    instance = make_instance(State.PENDING)
    timeline(instance, ("2026-03-10 10:00:00", "running"), ("2026-03-10 12:00:00", "stopping"))
    with patch("portal.billing.clock.now", lambda: datetime(2026, 4, 2, tzinfo=UTC)):
        yield Month(2026, 3)


def test_an_invoice_issued_by_staff_and_by_the_monthly_task(team, outsider, staff, march):
    invoice = billing.invoice_issue(organization=team.organization, month=march, issued_by=staff)
    entry = AuditEntry.objects.get(action="invoice.issued")
    _assert_actor(entry, ActorKind.STAFF, staff)
    assert (entry.target_label, entry.detail["month"]) == (invoice.number, "2026-03")

    other = make_running_march(outsider.organization, team)
    billing.invoice_issue(organization=other, month=march)
    system = AuditEntry.objects.get(action="invoice.issued", organization=other)
    _assert_actor(system, ActorKind.SYSTEM, None, "invoices_issue_for_month")


def make_running_march(organization, team):
    from portal.instances.models import Instance

    template = Instance.objects.filter(organization=team.organization).first()
    instance = Instance.objects.create(
        organization=organization,
        name="other-1",
        instance_type=template.instance_type,
        region=template.region,
        image=template.image,
        gpus=1,
    )
    timeline(instance, ("2026-03-11 10:00:00", "running"), ("2026-03-11 11:00:00", "stopping"))
    return organization


def test_a_credit_granted_by_staff(team, staff, only):
    grant = billing.credit_grant(
        organization=team.organization, amount="25.00", reason="Outage on March 3.", by=staff
    )
    entry = only("credit.granted")
    _assert_actor(entry, ActorKind.STAFF, staff)
    assert entry.target_id == str(grant.pk)
    assert entry.detail["amount"] == str(Decimal("25.00"))
