"""Creating another organization at /orgs/new/."""

import pytest

from portal.orgs.models import Organization
from tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def user_client(client_for):
    return client_for(UserFactory())


def test_a_signed_in_user_creates_an_organization_and_becomes_its_owner(user_client):
    response = user_client.post("/orgs/new/", {"name": "Deep Thought"}, follow=True)

    assert response.redirect_chain[-1][0] == "/o/deep-thought/"
    assert "Created Deep Thought. You are its owner." in response.content.decode()
    membership = Organization.objects.get(slug="deep-thought").memberships.get()
    assert membership.role == "owner"


def test_a_name_already_in_use_gets_an_address_of_its_own(user_client):
    OrganizationFactory(name="Deep Thought", slug="deep-thought")

    response = user_client.post("/orgs/new/", {"name": "Deep Thought"})

    assert response["Location"] == "/o/deep-thought-2/"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("   ", "This field is required."),
        ("x" * 500, "Ensure this value has at most 100 characters (it has 500)."),
    ],
    ids=["empty", "500 characters"],
)
def test_an_unusable_name_is_refused_with_a_message_and_creates_nothing(user_client, name, message):
    response = user_client.post("/orgs/new/", {"name": name})

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Organization.objects.exists()


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.post("/orgs/new/", {"name": "Deep Thought"})

    assert response["Location"].startswith("/accounts/login/")
    assert not Organization.objects.exists()
