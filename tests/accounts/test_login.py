"""Logging in with e-mail and password, and allauth's limit on failed attempts."""

import pytest

from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

WRONG = "The email address and/or password you specified are not correct."


def test_a_verified_user_logs_in_and_lands_on_the_dashboard(client, log_in):
    membership = MembershipFactory(organization__slug="analytical-engines")

    response = log_in(membership.user.email)

    assert response["Location"] == "/dashboard/"
    assert client.get("/dashboard/")["Location"] == "/o/analytical-engines/"


def test_a_wrong_password_is_refused(client, log_in):
    user = UserFactory()

    response = log_in(user.email, "not-the-password")

    assert WRONG in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_after_repeated_failures_the_form_says_too_many_failed_attempts(client, log_in):
    user = UserFactory()
    for _ in range(5):
        assert WRONG in log_in(user.email, "guess").content.decode()

    response = log_in(user.email)  # even the right password is now turned away

    assert "Too many failed login attempts. Try again later." in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_limit_is_per_address(client, log_in):
    victim, bystander = UserFactory(), UserFactory()
    for _ in range(5):
        log_in(victim.email, "guess")

    assert log_in(bystander.email)["Location"] == "/dashboard/"
