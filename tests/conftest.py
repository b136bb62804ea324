"""Fixtures every test may use: people in an organization, one per role, and an outsider."""

from dataclasses import dataclass

import pytest
from django.core.cache import cache

from portal.orgs.models import Membership, Organization
from portal.orgs.roles import Role
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate limits live in the (Redis) cache; each test starts with none used."""
    cache.clear()
    yield


@dataclass
class Team:
    organization: Organization
    owner: Membership
    admin: Membership
    member: Membership
    billing: Membership
    viewer: Membership

    def by_role(self, role: str) -> Membership:
        return getattr(self, role)


@pytest.fixture
def team(db) -> Team:
    organization = OrganizationFactory(name="Acme AI", slug="acme")
    return Team(
        organization=organization,
        **{role.value: MembershipFactory(organization=organization, role=role) for role in Role},
    )


@pytest.fixture
def outsider(db) -> Membership:
    """Someone who owns another organization and has nothing to do with `team`."""
    return MembershipFactory(
        organization=OrganizationFactory(name="Rival Labs", slug="rival"), role=Role.OWNER
    )


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def client_for(client):
    """Log a user in on the test client: `client_for(team.owner.user)`."""

    def login(user):
        client.force_login(user)
        return client

    return login
