"""api_token_create and api_token_revoke: the rules, and the audit entries."""

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.api.models import ApiToken, Scope
from portal.api.services import api_token_create, api_token_revoke
from portal.audit.models import AuditEntry
from portal.lib.apitoken import parse_token
from portal.lib.errors import ApplicationError

pytestmark = pytest.mark.django_db


def test_create_returns_the_value_once_with_its_prefix(team):
    token, value = api_token_create(
        membership=team.member, name="  CI   pipeline ", scope=Scope.READ_WRITE
    )

    assert parse_token(value) is not None
    assert value.startswith(f"bf_{token.prefix}_")
    assert token.name == "CI pipeline"
    assert token.organization == team.organization and token.user == team.member.user
    entry = AuditEntry.objects.get(action="api_token.created")
    assert entry.organization == team.organization
    assert parse_token(value)[1] not in str(entry.detail)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"scope": "admin"}, "scope"),
        ({"expires_at": timezone.now() - timedelta(minutes=1)}, "expires_at"),
        ({"expires_at": timezone.now() + timedelta(days=400)}, "expires_at"),
    ],
)
def test_create_refuses_bad_input_and_writes_nothing(team, kwargs, field):
    arguments = {"membership": team.member, "name": "ok", "scope": Scope.READ, **kwargs}

    with pytest.raises(ApplicationError) as raised:
        api_token_create(**arguments)

    assert raised.value.field == field
    assert not ApiToken.objects.exists()


def test_members_revoke_their_own_tokens_owners_and_admins_any(team):
    mine, _ = api_token_create(membership=team.member, name="mine", scope=Scope.READ)
    admins, _ = api_token_create(membership=team.admin, name="admin's", scope=Scope.READ)

    with pytest.raises(ApplicationError) as raised:
        api_token_revoke(membership=team.member, token=admins)
    assert raised.value.code == "forbidden"

    api_token_revoke(membership=team.member, token=mine)
    api_token_revoke(membership=team.admin, token=mine)  # twice: no harm, one audit entry
    api_token_revoke(membership=team.owner, token=admins)

    assert ApiToken.objects.filter(revoked_at__isnull=True).count() == 0
    assert AuditEntry.objects.filter(action="api_token.revoked").count() == 2


def test_nobody_revokes_another_organizations_token(team, outsider):
    token, _ = api_token_create(membership=outsider, name="theirs", scope=Scope.READ)

    with pytest.raises(ApplicationError) as raised:
        api_token_revoke(membership=team.owner, token=token)

    assert raised.value.code == "not_found"
    assert ApiToken.objects.get().revoked_at is None
