"""Organization, member and invitation changes made on the portal each leave an entry."""

import pytest

from portal.audit.models import AuditEntry
from portal.orgs import services
from tests.audit.conftest import IP
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def assert_entry(entry, *, actor, organization, target_type, target_id) -> None:
    assert entry.actor_kind == "user"
    assert entry.actor_user == actor and entry.actor_label == actor.email
    assert entry.organization == organization
    assert entry.organization_label == organization.name
    assert (entry.target_type, entry.target_id) == (target_type, str(target_id))
    assert entry.ip == IP


@pytest.fixture
def as_user(client_for):
    def login(membership_or_user):
        return client_for(getattr(membership_or_user, "user", membership_or_user))

    return login


def test_creating_an_organization(as_user, only):
    user = UserFactory()

    as_user(user).post("/orgs/new/", {"name": "Deep Field"}, REMOTE_ADDR=IP)

    entry = only("org.created")
    assert_entry(
        entry,
        actor=user,
        organization=entry.organization,
        target_type="orgs.organization",
        target_id=entry.organization.pk,
    )
    assert entry.organization.name == "Deep Field"


def test_renaming_the_organization(team, as_user, only):
    as_user(team.admin).post("/o/acme/settings/", {"name": "Acme Research"}, REMOTE_ADDR=IP)
    team.organization.refresh_from_db()

    entry = only("org.renamed")
    assert_entry(
        entry,
        actor=team.admin.user,
        organization=team.organization,
        target_type="orgs.organization",
        target_id=team.organization.pk,
    )
    assert entry.detail == {"from": "Acme AI", "to": "Acme Research"}
    assert entry.organization_label == "Acme Research"


def test_saving_the_same_name_records_nothing(team, as_user):
    as_user(team.owner).post("/o/acme/settings/", {"name": "Acme AI"}, REMOTE_ADDR=IP)

    assert not AuditEntry.objects.filter(action="org.renamed").exists()


def test_changing_a_role(team, as_user, only):
    as_user(team.owner).post(
        f"/o/acme/members/{team.member.pk}/role/", {"role": "admin"}, REMOTE_ADDR=IP
    )

    entry = only("member.role_changed")
    assert_entry(
        entry,
        actor=team.owner.user,
        organization=team.organization,
        target_type="accounts.user",
        target_id=team.member.user.pk,
    )
    assert entry.detail == {"from": "member", "to": "admin"}


def test_a_refused_role_change_records_nothing(team, as_user):
    as_user(team.owner).post(
        f"/o/acme/members/{team.owner.pk}/role/", {"role": "viewer"}, REMOTE_ADDR=IP
    )  # the last owner

    assert not AuditEntry.objects.exists()


def test_removing_a_member(team, as_user, only):
    removed = team.billing.user

    as_user(team.owner).post(f"/o/acme/members/{team.billing.pk}/remove/", REMOTE_ADDR=IP)

    entry = only("member.removed")
    assert_entry(
        entry,
        actor=team.owner.user,
        organization=team.organization,
        target_type="accounts.user",
        target_id=removed.pk,
    )
    assert entry.target_label == removed.email and entry.detail == {"role": "billing"}


def test_leaving(team, as_user, only):
    as_user(team.viewer).post("/o/acme/leave/", REMOTE_ADDR=IP)

    entry = only("member.left")
    assert_entry(
        entry,
        actor=team.viewer.user,
        organization=team.organization,
        target_type="accounts.user",
        target_id=team.viewer.user.pk,
    )


def test_inviting(team, as_user, only):
    as_user(team.admin).post(
        "/o/acme/members/invite/", {"email": "new@example.com", "role": "member"}, REMOTE_ADDR=IP
    )

    entry = only("invitation.created")
    invitation = team.organization.invitations.get()
    assert_entry(
        entry,
        actor=team.admin.user,
        organization=team.organization,
        target_type="orgs.invitation",
        target_id=invitation.pk,
    )
    assert entry.detail == {"email": "new@example.com", "role": "member"}


@pytest.fixture
def invitation(team):
    invitation, token = services.invitation_create(
        actor=team.owner, email="new@example.com", role="viewer"
    )
    invitation.token = token
    return invitation


def test_an_invitation_created_by_a_service_without_request_has_no_ip(invitation, only, team):
    entry = only("invitation.created")
    assert entry.ip is None and entry.actor_user == team.owner.user


def test_resending_an_invitation(team, as_user, invitation, only):
    as_user(team.admin).post(f"/o/acme/invitations/{invitation.pk}/resend/", REMOTE_ADDR=IP)

    assert_entry(
        only("invitation.resent"),
        actor=team.admin.user,
        organization=team.organization,
        target_type="orgs.invitation",
        target_id=invitation.pk,
    )


def test_revoking_an_invitation(team, as_user, invitation, only):
    as_user(team.owner).post(f"/o/acme/invitations/{invitation.pk}/revoke/", REMOTE_ADDR=IP)

    entry = only("invitation.revoked")
    assert_entry(
        entry,
        actor=team.owner.user,
        organization=team.organization,
        target_type="orgs.invitation",
        target_id=invitation.pk,
    )
    assert entry.detail == {"email": "new@example.com", "role": "viewer"}

    as_user(team.owner).post(f"/o/acme/invitations/{invitation.pk}/revoke/", REMOTE_ADDR=IP)
    assert AuditEntry.objects.filter(action="invitation.revoked").count() == 1  # not twice


def test_accepting_an_invitation(team, as_user, invitation, only):
    newcomer = UserFactory(email="new@example.com")

    as_user(newcomer).post(f"/invitations/{invitation.token}/", REMOTE_ADDR=IP)

    entry = only("invitation.accepted")
    assert_entry(
        entry,
        actor=newcomer,
        organization=team.organization,
        target_type="orgs.invitation",
        target_id=invitation.pk,
    )
    assert entry.detail == {"email": "new@example.com", "role": "viewer"}
