"""Staff read every entry in Django admin; nobody adds, changes or deletes one there."""

import pytest
from django.contrib.auth.models import Permission

from portal.audit.models import AuditEntry
from portal.audit.services import audit_record
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LIST = "/admin/audit/auditentry/"


@pytest.fixture
def entry(team):
    return audit_record(
        action="member.role_changed",
        organization=team.organization,
        actor=team.owner,
        target=team.member.user,
        detail={"from": "member", "to": "admin"},
    )


@pytest.fixture
def admin_client(client_for, staff):
    return client_for(staff)


def assert_unchanged(entry) -> None:
    fresh = AuditEntry.objects.get(pk=entry.pk)
    assert (fresh.action, fresh.detail) == (
        "member.role_changed",
        {"from": "member", "to": "admin"},
    )


def test_customers_do_not_get_in(team, client_for, entry):
    response = client_for(team.owner.user).get(LIST)

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_list_filters_and_searches(team, outsider, admin_client, entry):
    login = audit_record(action="auth.login", actor=outsider.user)
    staff_act = audit_record(
        action="credit.granted",
        organization=outsider.organization,
        actor=UserFactory(is_staff=True),
        actor_kind="staff",
    )

    def listed(**params) -> set[int]:
        response = admin_client.get(LIST, params)
        assert response.status_code == 200
        return {e.pk for e in response.context["cl"].result_list}

    assert listed() == {entry.pk, login.pk, staff_act.pk}
    assert listed(action="auth.login") == {login.pk}
    assert listed(group="member") == {entry.pk}
    assert listed(actor_kind="staff") == {staff_act.pk}
    assert listed(q=outsider.user.email) == {login.pk}
    assert listed(q="Rival") == {staff_act.pk}
    assert listed(q=team.member.user.email) == {entry.pk}  # the target


def test_the_change_view_shows_the_entry_without_a_save_button(admin_client, entry):
    response = admin_client.get(f"{LIST}{entry.pk}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "member.role_changed" in page and "&quot;to&quot;: &quot;admin&quot;" in page
    assert 'name="_save"' not in page and "Delete" not in page


def test_posting_to_the_change_view_is_refused(admin_client, entry):
    response = admin_client.post(
        f"{LIST}{entry.pk}/change/", {"action": "auth.login", "actor_kind": "system"}
    )

    assert response.status_code == 403
    assert_unchanged(entry)


def test_the_delete_view_is_refused(admin_client, entry):
    assert admin_client.get(f"{LIST}{entry.pk}/delete/").status_code == 403
    assert admin_client.post(f"{LIST}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert_unchanged(entry)


def test_there_is_no_add_view(admin_client):
    assert admin_client.get(f"{LIST}add/").status_code == 403
    assert admin_client.post(f"{LIST}add/", {"action": "auth.login"}).status_code == 403
    assert not AuditEntry.objects.exists()


def test_there_is_no_delete_action(admin_client, entry):
    response = admin_client.get(LIST)
    assert "delete_selected" not in response.content.decode()
    assert not response.context["cl"].model_admin.get_actions(response.wsgi_request)

    admin_client.post(LIST, {"action": "delete_selected", "_selected_action": [entry.pk]})
    admin_client.post(
        LIST, {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
    )
    assert_unchanged(entry)


def test_staff_with_the_view_permission_only_read(client_for, entry):
    reader = UserFactory(is_staff=True)
    reader.user_permissions.add(Permission.objects.get(codename="view_auditentry"))
    client = client_for(reader)

    assert client.get(LIST).status_code == 200
    assert client.get(f"{LIST}{entry.pk}/change/").status_code == 200
    assert client.post(f"{LIST}{entry.pk}/change/", {}).status_code == 403
    assert client.post(f"{LIST}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert_unchanged(entry)
