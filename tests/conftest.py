"""Fixtures every test may use: people in an organization, one per role, and an outsider."""

from dataclasses import dataclass

import pytest
from django.core.cache import cache
from django.db import connection, transaction

from portal.notifications import delivery
from portal.notifications import services as notification_services
from portal.orgs.models import Membership, Organization
from portal.orgs.roles import Role
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate limits live in the (Redis) cache; each test starts with none used."""
    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _mail_leaves_at_commit(monkeypatch):
    """E-mail leaves the outbox when the change that queued it commits, without a broker hop:
    the outbox row is delivered (built, rendered, sent to the mail backend) in the test's
    process. A test runs inside a transaction that never commits, so a delivery queued outside
    any transaction of the code under test goes at once (as in production, in autocommit);
    one queued inside waits for that transaction's on_commit hooks, which tests run with
    `django_capture_on_commit_callbacks(execute=True)`.
    """

    def after_commit(callback):
        if all(getattr(block, "_from_testcase", False) for block in connection.atomic_blocks):
            callback()
        else:
            transaction.on_commit(callback)

    monkeypatch.setattr(notification_services, "_after_commit", after_commit)
    monkeypatch.setattr(
        notification_services,
        "_enqueue",
        lambda pk, countdown=None: delivery.notification_deliver(pk),
    )
    # Each row is delivered at once: a batch's later rows are not left to its first's delivery.
    monkeypatch.setattr(notification_services, "_sent_at_once", lambda: True)


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
