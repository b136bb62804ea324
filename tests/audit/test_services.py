"""audit_record: who, where, what, and what it refuses."""

from decimal import Decimal

import pytest
from django.test import RequestFactory

from portal.audit.actions import ACTIONS, GROUPS, action_group
from portal.audit.models import AuditEntry
from portal.audit.services import audit_record, audit_record_on_commit, small_detail
from tests.audit.conftest import IP
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def request_from(rf: RequestFactory):
    def build(user=None, **meta):
        request = rf.post("/", REMOTE_ADDR=meta.pop("REMOTE_ADDR", IP), **meta)
        if user is not None:
            request.user = user
        return request

    return build


def test_a_user_acting_in_an_organization(team, request_from):
    member = team.member

    entry = audit_record(
        action="org.renamed",
        organization=team.organization,
        actor=member.user,
        request=request_from(),
        target=team.organization,
        detail={"from": "Old", "to": "Acme AI"},
    )

    entry.refresh_from_db()
    assert entry.actor_kind == "user"
    assert entry.actor_user == member.user and entry.actor_label == member.user.email
    assert entry.organization == team.organization and entry.organization_label == "Acme AI"
    assert (entry.target_type, entry.target_id) == ("orgs.organization", str(team.organization.pk))
    assert entry.target_label == "Acme AI"
    assert entry.ip == IP
    assert entry.detail == {"from": "Old", "to": "Acme AI"}


def test_a_membership_stands_for_its_user(team):
    entry = audit_record(action="member.left", organization=team.organization, actor=team.admin)

    assert entry.actor_user == team.admin.user and entry.actor_kind == "user"


def test_without_an_actor_the_request_user_acts(team, request_from):
    entry = audit_record(action="org.renamed", request=request_from(user=team.owner.user))

    assert entry.actor_user == team.owner.user and entry.actor_kind == "user"


def test_nobody_is_the_system_and_a_task_can_name_itself(team):
    entry = audit_record(
        action="instance.state_changed", organization=team.organization, actor_label="reconcile"
    )

    assert (entry.actor_kind, entry.actor_user, entry.actor_label) == ("system", None, "reconcile")
    assert entry.ip is None


def test_staff_are_staff_when_the_caller_says_so(team):
    operator = UserFactory(is_staff=True)

    entry = audit_record(
        action="credit.granted", organization=team.organization, actor=operator, actor_kind="staff"
    )

    assert entry.actor_kind == "staff" and entry.actor_user == operator


def test_an_api_token_is_any_other_model_instance(team):
    token = team.organization  # stands in for a token model: pk, a name, no `user` to take
    token.user = team.owner.user  # the token's owner

    entry = audit_record(action="instance.launched", organization=team.organization, actor=token)

    assert entry.actor_kind == "api_token"
    assert entry.actor_token_id == token.pk and entry.actor_label == "Acme AI"
    assert entry.actor_user == team.owner.user


def test_a_token_on_a_rest_framework_request_is_the_actor(team, request_from):
    request = request_from(user=team.owner.user)
    request.auth = team.organization  # what DRF puts there for token authentication

    entry = audit_record(action="instance.launched", request=request)

    assert entry.actor_kind == "api_token" and entry.actor_token_id == team.organization.pk


def test_the_address_is_the_requests_remote_address(request_from):
    # Behind a trusted proxy the first middleware has made REMOTE_ADDR the client's
    # (tests/runtime/test_proxy.py); a header a client wrote is never read here.
    request = request_from(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4")

    assert audit_record(action="auth.login", request=request).ip == "10.0.0.2"


def test_a_garbled_address_is_left_out(request_from):
    assert audit_record(action="auth.login", request=request_from(REMOTE_ADDR="")).ip is None
    assert audit_record(action="auth.login", request=request_from(REMOTE_ADDR="x")).ip is None


def test_ipv6_is_kept(request_from):
    assert audit_record(
        action="auth.login", request=request_from(REMOTE_ADDR="2001:db8::1")
    ).ip == ("2001:db8::1")


def test_an_unknown_action_is_refused():
    with pytest.raises(ValueError, match="add it to portal/audit/actions.py"):
        audit_record(action="instance.lauched")
    with pytest.raises(ValueError, match="actor kind"):
        audit_record(action="auth.login", actor_kind="robot")
    assert not AuditEntry.objects.exists()


def test_a_big_detail_is_cut_down(team):
    detail = {
        "long": "x" * 5000,
        "price": Decimal("1.25"),
        "many": list(range(100)),
        "deep": {"a": {"b": {"c": {"d": 1}}}},
        **{f"k{n}": n for n in range(40)},
    }

    entry = audit_record(action="auth.login", detail=detail)
    entry.refresh_from_db()

    assert len(entry.detail) == 21 and entry.detail["…"] == "24 more"
    assert len(entry.detail["long"]) == 200 and entry.detail["long"].endswith("…")
    assert entry.detail["price"] == "1.25"
    assert entry.detail["many"][:3] == [0, 1, 2] and entry.detail["many"][-1] == "… 80 more"
    assert entry.detail["deep"] == {"a": {"b": "…"}}


def test_small_detail_keeps_small_things_as_they_are():
    value = {"a": 1, "b": [True, None, 2.5], "c": "text"}
    assert small_detail(value) == value
    assert small_detail({"x": float("nan")}) == {"x": "nan"}


def test_a_deleted_target_keeps_its_words(team):
    invitation_target = team.viewer.user
    entry = audit_record(action="member.removed", target=invitation_target)

    assert entry.target_type == "accounts.user" and entry.target_label == invitation_target.email


def test_on_commit_waits_for_the_commit(team, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        entry = audit_record_on_commit(action="org.renamed", organization=team.organization)
        assert entry.pk is None and not AuditEntry.objects.exists()

    assert len(callbacks) == 1
    assert AuditEntry.objects.get().pk == entry.pk


def test_every_action_belongs_to_a_group_the_page_offers():
    assert {action_group(code) for code in ACTIONS} <= set(GROUPS)
    assert all(code.count(".") == 1 and code == code.lower() for code in ACTIONS)
