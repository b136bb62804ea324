"""Switching organizations: /dashboard/ returns to the organization visited last."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_org_client(client_for):
    user = UserFactory()
    for name, slug in [("Alpha", "alpha"), ("Beta", "beta")]:
        MembershipFactory(user=user, organization=OrganizationFactory(name=name, slug=slug))
    return client_for(user)


@pytest.mark.parametrize("slug", ["alpha", "beta"])
def test_the_dashboard_opens_the_organization_visited_last(two_org_client, slug):
    two_org_client.get(f"/o/{slug}/")

    assert two_org_client.get("/dashboard/")["Location"] == f"/o/{slug}/"


def test_staying_in_the_same_organization_does_not_write_the_session(two_org_client):
    two_org_client.get("/o/alpha/")
    with CaptureQueriesContext(connection) as queries:
        two_org_client.get("/o/alpha/")
    assert not [
        q for q in queries.captured_queries if "django_session" in q["sql"] and "UPDATE" in q["sql"]
    ]
    two_org_client.get("/o/beta/")  # a switch is still remembered
    assert two_org_client.get("/dashboard/")["Location"] == "/o/beta/"


def test_the_switcher_lists_every_organization_of_the_user(two_org_client):
    page = two_org_client.get("/o/alpha/").content.decode()

    assert 'href="/o/alpha/"' in page
    assert 'href="/o/beta/"' in page


def test_someone_without_an_organization_is_offered_to_create_one(client_for):
    response = client_for(UserFactory()).get("/dashboard/")

    assert response.status_code == 200
    assert "You are not in an organization yet" in response.content.decode()


def test_anonymous_visitors_are_sent_to_log_in(client):
    assert client.get("/dashboard/")["Location"].startswith("/accounts/login/")
