"""The operator console at /admin/ signs people in through allauth, two-factor included."""

import pytest

from tests.accounts.helpers import totp_code
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_the_admin_login_page_sends_people_to_the_allauth_login(client):
    response = client.get("/admin/login/")

    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2Flogin%2F"


def test_the_admin_sends_anonymous_visitors_to_log_in(client):
    response = client.get("/admin/", follow=True)

    assert response.redirect_chain[-1][0] == "/accounts/login/?next=%2Fadmin%2F"


def test_a_staff_user_without_two_factor_is_sent_to_set_it_up_before_the_admin(client, log_in):
    staff = UserFactory(is_staff=True, is_superuser=True, two_factor=False)

    response = log_in(staff.email, next_url="/admin/")

    assert response["Location"] == "/admin/"
    assert client.get("/admin/")["Location"] == "/accounts/2fa/"


def test_a_staff_user_with_two_factor_must_give_the_code_before_reaching_the_admin(
    client, log_in, user_with_totp
):
    user_with_totp.is_staff = user_with_totp.is_superuser = True
    user_with_totp.save()

    response = log_in(user_with_totp.email, next_url="/admin/")

    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert client.get("/admin/").status_code == 302
    response = client.post(
        "/accounts/2fa/authenticate/", {"code": totp_code(user_with_totp.secret)}
    )
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_signed_in_customer_gets_no_admin(client_for):
    client = client_for(UserFactory())

    response = client.get("/admin/", follow=True)

    assert response.status_code == 403
    assert client.get("/admin/accounts/user/", follow=True).status_code == 403
