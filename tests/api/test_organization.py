"""/organization/, /members/ and /invitations/: what the members and settings pages do, with
the same rules (who may invite, the last owner, roles one may hand out)."""

import pytest
from django.core import mail

from portal.audit.models import AuditEntry
from portal.orgs.models import Invitation, Membership
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db


def test_the_organization_and_your_role(team, api_as):
    body = api_as(team.member).get("/organization/").json()

    assert body["slug"] == "acme" and body["name"] == "Acme AI"
    assert body["role"] == "member" and body["members"] == 5
    assert "instances.manage" in body["permissions"]
    assert "members.invite" not in body["permissions"]


def test_owners_rename_it_and_the_audit_log_says_through_which_token(team, api_as):
    response = api_as(team.admin).patch("/organization/", {"name": "  Acme   Research "})

    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Acme Research"
    entry = AuditEntry.objects.get(action="org.renamed")
    assert entry.actor_kind == "api_token" and entry.detail["to"] == "Acme Research"


def test_members_cannot_rename(team, api_as):
    assert_error(api_as(team.member).patch("/organization/", {"name": "Mine"}), 403, "forbidden")


def test_members_listed_with_you_marked(team, api_as):
    body = api_as(team.viewer).get("/members/").json()

    assert len(body) == 5
    assert {m["role"] for m in body} == {"owner", "admin", "member", "billing", "viewer"}
    assert [m["email"] for m in body if m["you"]] == [team.viewer.user.email]


def test_owners_change_roles_but_not_the_last_owner(team, api_as):
    owner = api_as(team.owner)

    changed = owner.patch(f"/members/{team.member.pk}/", {"role": "admin"})
    assert changed.status_code == 200 and changed.json()["role"] == "admin"
    assert Membership.objects.get(pk=team.member.pk).role == "admin"

    last = owner.patch(f"/members/{team.owner.pk}/", {"role": "viewer"})
    assert_error(last, 409, "last_owner")
    assert_error(owner.patch(f"/members/{team.member.pk}/", {"role": "god"}), 400)


def test_admins_cannot_change_roles(team, api_as):
    response = api_as(team.admin).patch(f"/members/{team.member.pk}/", {"role": "owner"})
    assert_error(response, 403, "forbidden")
    assert Membership.objects.get(pk=team.member.pk).role == "member"


def test_removing_someone_and_leaving(team, api_as):
    owner, viewer = api_as(team.owner), api_as(team.viewer)

    assert owner.delete(f"/members/{team.billing.pk}/").status_code == 204
    assert not Membership.objects.filter(pk=team.billing.pk).exists()
    # Anyone may leave (with the scope membership:write); the token stops working with it.
    assert_error(viewer.delete("/membership/"), 403, "insufficient_scope")
    viewer = api_as(team.viewer, scopes=["membership:write", "organization:read"])
    assert viewer.get("/membership/").json()["role"] == "viewer"
    assert viewer.delete("/membership/").status_code == 204
    assert_error(viewer.get("/organization/"), 401, "token_inactive")
    # But not remove others.
    assert_error(api_as(team.member).delete(f"/members/{team.admin.pk}/"), 403, "forbidden")
    assert_error(owner.delete(f"/members/{team.owner.pk}/"), 409, "last_owner")
    assert_error(owner.delete("/membership/"), 409, "last_owner")


def test_another_organizations_member_is_404(team, outsider, api_as):
    assert_error(api_as(team.owner).get(f"/members/{outsider.pk}/"), 404, "not_found")
    assert_error(api_as(team.owner).delete(f"/members/{outsider.pk}/"), 404, "not_found")


def test_invite_by_email_and_the_link_goes_by_mail_only(
    team, api_as, django_capture_on_commit_callbacks
):
    api = api_as(team.admin)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/invitations/", {"email": "New.Person@Example.com", "role": "member"})

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["email"] == "new.person@example.com" and body["status"] == "pending"
    assert body["invited_by"] == team.admin.user.email
    assert "token" not in body and "link" not in str(body)
    assert [m.to for m in mail.outbox] == [["new.person@example.com"]]
    listed = api.get("/invitations/").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == body["id"]


def test_an_invitation_with_an_idempotency_key_is_sent_once(
    team, api_as, django_capture_on_commit_callbacks
):
    api = api_as(team.owner)
    headers = {"Idempotency-Key": "invite-1"}
    data = {"email": "twice@example.com", "role": "viewer"}

    with django_capture_on_commit_callbacks(execute=True):
        first = api.post("/invitations/", data, headers=headers)
        again = api.post("/invitations/", data, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.content == first.content
    assert Invitation.objects.filter(email="twice@example.com").count() == 1
    assert len(mail.outbox) == 1


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"email": "not-an-address", "role": "member"}, "email"),
        ({"email": 12, "role": "member"}, "email"),
        ({"email": "x@example.com", "role": "emperor"}, "role"),
        ({"email": "x@example.com", "role": "member", "message": "hi"}, "message"),
    ],
)
def test_bad_invitations_are_400_with_the_field(team, api_as, data, field):
    error = assert_error(api_as(team.owner).post("/invitations/", data), 400)
    assert field in error["details"]


def test_rules_of_inviting(team, api_as):
    admin = api_as(team.admin)
    # Admins cannot make owners; members already in are refused; members cannot invite.
    assert "role" in assert_error(
        admin.post("/invitations/", {"email": "boss@example.com", "role": "owner"}), 400
    ).get("details", {})
    assert_error(
        admin.post("/invitations/", {"email": team.member.user.email, "role": "admin"}), 400
    )
    assert_error(
        api_as(team.member).post("/invitations/", {"email": "a@example.com", "role": "viewer"}),
        403,
        "forbidden",
    )


def test_resend_and_revoke(team, api_as, django_capture_on_commit_callbacks):
    api = api_as(team.owner)
    invitation = api.post("/invitations/", {"email": "late@example.com", "role": "member"}).json()
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        resent = api.post(f"/invitations/{invitation['id']}/resend/")
    assert resent.status_code == 200 and len(mail.outbox) == 1

    revoked = api.post(f"/invitations/{invitation['id']}/revoke/")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert_error(api.post(f"/invitations/{invitation['id']}/revoke/"), 400)
    assert api.get("/invitations/").json()["count"] == 0


def test_another_organizations_invitation_is_404(team, outsider, api_as):
    from portal.orgs.services import invitation_create

    theirs, _token = invitation_create(actor=outsider, email="x@example.com", role="member")
    api = api_as(team.owner)

    assert_error(api.get(f"/invitations/{theirs.pk}/"), 404)
    assert_error(api.post(f"/invitations/{theirs.pk}/revoke/"), 404)
    assert Invitation.objects.get(pk=theirs.pk).revoked_at is None
