"""Nobody changes or deletes an audit entry: not through the model, not in SQL."""

import pytest
from django.db import DatabaseError, connection, transaction

from portal.audit.models import AuditEntry, AuditEntryImmutable
from portal.audit.services import audit_record
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry(team):
    return audit_record(
        action="member.role_changed",
        organization=team.organization,
        actor=team.owner,
        target=team.member.user,
        detail={"from": "member", "to": "admin"},
    )


def unchanged(entry) -> bool:
    fresh = AuditEntry.objects.get(pk=entry.pk)
    return (fresh.action, fresh.actor_user_id, fresh.detail) == (
        "member.role_changed",
        entry.actor_user_id,
        {"from": "member", "to": "admin"},
    )


def test_the_model_refuses_to_save_an_existing_entry(entry):
    entry.action = "member.removed"

    with pytest.raises(AuditEntryImmutable, match="cannot be changed or deleted"):
        entry.save()
    assert unchanged(entry)


def test_the_model_refuses_to_delete(entry):
    with pytest.raises(AuditEntryImmutable):
        entry.delete()
    assert unchanged(entry)


def test_the_manager_refuses_update_and_delete(entry):
    with pytest.raises(AuditEntryImmutable):
        AuditEntry.objects.filter(pk=entry.pk).update(action="member.removed")
    with pytest.raises(AuditEntryImmutable):
        AuditEntry.objects.all().delete()
    with pytest.raises(AuditEntryImmutable):
        AuditEntry.objects.bulk_update([entry], ["action"])
    assert unchanged(entry)


def test_a_new_entry_with_a_chosen_pk_is_an_insert_never_an_update(entry):
    copy = AuditEntry(pk=entry.pk, action="auth.login", actor_kind="system")

    with pytest.raises(DatabaseError), transaction.atomic():
        copy.save()  # duplicate key: it did not overwrite the existing row
    assert unchanged(entry)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditentry SET action = 'auth.login' WHERE id = %s",
        "UPDATE audit_auditentry SET detail = '{}'::jsonb WHERE id = %s",
        "UPDATE audit_auditentry SET at = now() - interval '1 day' WHERE id = %s",
        "UPDATE audit_auditentry SET ip = '127.0.0.1' WHERE id = %s",
        "DELETE FROM audit_auditentry WHERE id = %s",
    ],
)
def test_postgresql_refuses_raw_updates_and_deletes(entry, sql):
    assert connection.vendor == "postgresql"

    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [entry.pk])
    assert unchanged(entry)


def test_postgresql_refuses_pointing_an_entry_at_someone_else(entry):
    someone = MembershipFactory().user

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry._base_manager.filter(pk=entry.pk).update(actor_user=someone)
    assert unchanged(entry)


def test_deleting_the_user_keeps_the_entry_with_their_address(team, entry):
    email = team.owner.user.email

    team.owner.user.delete()

    fresh = AuditEntry.objects.get(pk=entry.pk)
    assert fresh.actor_user is None and fresh.actor_label == email
    assert fresh.action == "member.role_changed"


def test_deleting_the_organization_keeps_the_entry_with_its_name(team, entry):
    team.organization.delete()

    fresh = AuditEntry.objects.get(pk=entry.pk)
    assert fresh.organization is None and fresh.organization_label == "Acme AI"
