"""Two-factor authentication with an authenticator app (TOTP) and recovery codes."""

import re

import pytest
from allauth.mfa.models import Authenticator

from tests.accounts.helpers import totp_code
from tests.factories import PASSWORD, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

WRONG_CODE = "000000"


def shown_secret(page) -> str:
    return re.search(r'id="authenticator_secret"[^>]*value="([A-Z2-7=]+)"', page).group(1)


@pytest.fixture
def signed_in(client, client_for):
    """A signed-in user who has just confirmed their password, as activation asks."""
    user = UserFactory()
    client_for(user).post("/accounts/reauthenticate/", {"password": PASSWORD})
    return user


def test_activating_first_asks_for_the_password_again(client_for):
    response = client_for(UserFactory()).get("/accounts/2fa/totp/activate/")

    assert response["Location"].startswith("/accounts/reauthenticate/")


def test_activating_with_a_code_from_the_shown_secret_turns_two_factor_on(client, signed_in):
    page = client.get("/accounts/2fa/totp/activate/").content.decode()

    response = client.post("/accounts/2fa/totp/activate/", {"code": totp_code(shown_secret(page))})

    assert response["Location"] == "/accounts/2fa/recovery-codes/"
    assert signed_in.authenticator_set.filter(type=Authenticator.Type.TOTP).exists()


def test_after_activating_the_user_is_shown_their_recovery_codes(client, signed_in):
    page = client.get("/accounts/2fa/totp/activate/").content.decode()
    client.post("/accounts/2fa/totp/activate/", {"code": totp_code(shown_secret(page))})

    codes_page = client.get("/accounts/2fa/recovery-codes/").content.decode()

    codes = signed_in.authenticator_set.get(type=Authenticator.Type.RECOVERY_CODES).wrap()
    assert all(code in codes_page for code in codes.get_unused_codes())


def test_a_wrong_code_does_not_activate(client, signed_in):
    client.get("/accounts/2fa/totp/activate/")

    response = client.post("/accounts/2fa/totp/activate/", {"code": WRONG_CODE})

    assert "Incorrect code." in response.content.decode()
    assert not signed_in.authenticator_set.exists()


def test_with_two_factor_on_the_password_alone_does_not_log_in(client, log_in, user_with_totp):
    response = log_in(user_with_totp.email)

    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert client.get("/dashboard/")["Location"].startswith("/accounts/login/")


def test_the_code_from_the_app_completes_the_login(client, log_in, user_with_totp):
    MembershipFactory(user=user_with_totp, organization__slug="lab")
    log_in(user_with_totp.email)

    response = client.post(
        "/accounts/2fa/authenticate/", {"code": totp_code(user_with_totp.secret)}, follow=True
    )

    assert response.redirect_chain[-1][0] == "/o/lab/"


def test_a_wrong_code_keeps_the_user_out(client, log_in, user_with_totp):
    log_in(user_with_totp.email)

    response = client.post("/accounts/2fa/authenticate/", {"code": WRONG_CODE})

    assert "Incorrect code." in response.content.decode()
    assert client.get("/dashboard/").status_code == 302
    assert "_auth_user_id" not in client.session


def test_a_recovery_code_works_instead_of_the_app_but_only_once(client, log_in, user_with_totp):
    code = user_with_totp.recovery_codes[0]
    log_in(user_with_totp.email)
    first = client.post("/accounts/2fa/authenticate/", {"code": code})
    client.post("/accounts/logout/")
    log_in(user_with_totp.email)

    second = client.post("/accounts/2fa/authenticate/", {"code": code})

    assert first["Location"] == "/dashboard/"
    assert "Incorrect code." in second.content.decode()
    assert "_auth_user_id" not in client.session
