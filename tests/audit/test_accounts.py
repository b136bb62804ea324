"""Sign-in, failed sign-in, two-factor and account changes each leave an entry, with the IP."""

import re

import pytest
from allauth.mfa.models import Authenticator

from portal.audit.models import AuditEntry
from tests.accounts.helpers import link_in, mails_to, totp_code
from tests.audit.conftest import IP
from tests.factories import PASSWORD, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def log_in(client):
    def submit(email: str, password: str = PASSWORD):
        return client.post(
            "/accounts/login/", {"login": email, "password": password}, REMOTE_ADDR=IP
        )

    return submit


def assert_account_entry(entry: AuditEntry, user, *, actor_label=None) -> None:
    assert entry.actor_kind == "user"
    assert entry.actor_user == user
    assert entry.actor_label == (actor_label or user.email)
    assert entry.organization is None  # account events belong to no organization
    assert (entry.target_type, entry.target_id) == ("accounts.user", str(user.pk))
    assert entry.ip == IP


def test_signing_in(log_in, only):
    user = MembershipFactory().user

    assert log_in(user.email)["Location"] == "/dashboard/"

    assert_account_entry(only("auth.login"), user)


def test_force_login_in_tests_records_nothing(client_for):
    client_for(UserFactory())

    assert not AuditEntry.objects.exists()


def test_a_wrong_password_for_an_account(log_in, only):
    user = UserFactory(email="ada@example.com")

    log_in("ADA@example.com", "guess")

    entry = only("auth.login_failed")
    assert entry.actor_user is None and entry.actor_label == "ada@example.com"
    assert entry.actor_kind == "user"
    assert (entry.target_type, entry.target_id) == ("accounts.user", str(user.pk))
    assert entry.ip == IP
    assert entry.detail == {"email": "ada@example.com"}
    assert "guess" not in str(entry.detail)
    assert not AuditEntry.objects.filter(action="auth.login").exists()


def test_a_sign_in_attempt_for_an_unknown_address(log_in, only):
    log_in("nobody@example.com", "guess")

    entry = only("auth.login_failed")
    assert entry.actor_label == "nobody@example.com" and entry.target_type == ""
    assert entry.ip == IP


def test_with_two_factor_the_sign_in_counts_after_the_code(client, log_in, user_with_totp, only):
    log_in(user_with_totp.email)
    assert not AuditEntry.objects.filter(action="auth.login").exists()

    client.post("/accounts/2fa/authenticate/", {"code": "000000"}, REMOTE_ADDR=IP)
    wrong = only("auth.mfa_failed")
    assert_account_entry(wrong, user_with_totp)
    assert wrong.detail == {"type": "totp"}

    client.post(
        "/accounts/2fa/authenticate/", {"code": totp_code(user_with_totp.secret)}, REMOTE_ADDR=IP
    )
    assert_account_entry(only("auth.login"), user_with_totp)


@pytest.fixture
def user_with_totp(db):
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    user = UserFactory()
    user.secret = generate_totp_secret()
    TOTP.activate(user, user.secret)
    RecoveryCodes.activate(user)
    return user


@pytest.fixture
def reauthenticated(client, client_for):
    user = UserFactory()
    client_for(user).post("/accounts/reauthenticate/", {"password": PASSWORD})
    return user


# allauth sends the two-factor signals from on_commit callbacks that need the request still
# running: these tests commit for real, as production does.
mfa_test = pytest.mark.django_db(transaction=True)


def activate_totp(client) -> None:
    page = client.get("/accounts/2fa/totp/activate/").content.decode()
    secret = re.search(r'id="authenticator_secret"[^>]*value="([A-Z2-7=]+)"', page).group(1)
    client.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)}, REMOTE_ADDR=IP)


@mfa_test
def test_turning_two_factor_on(client, reauthenticated, only):
    activate_totp(client)

    assert reauthenticated.authenticator_set.filter(type=Authenticator.Type.TOTP).exists()
    activated = only("mfa.activated")
    assert_account_entry(activated, reauthenticated)
    assert activated.detail == {"type": "totp"}
    codes = only("mfa.recovery_codes_generated")
    assert_account_entry(codes, reauthenticated)
    assert codes.detail == {"type": "recovery_codes"}


@mfa_test
def test_turning_two_factor_off(client, reauthenticated):
    activate_totp(client)
    client.post("/accounts/2fa/totp/deactivate/", REMOTE_ADDR=IP)

    assert not reauthenticated.authenticator_set.exists()
    removed = AuditEntry.objects.filter(action="mfa.deactivated")
    assert sorted(e.detail["type"] for e in removed) == ["recovery_codes", "totp"]
    for entry in removed:
        assert_account_entry(entry, reauthenticated)


@mfa_test
def test_new_recovery_codes(client, reauthenticated):
    activate_totp(client)
    client.post("/accounts/2fa/recovery-codes/generate/", REMOTE_ADDR=IP)

    regenerated = AuditEntry.objects.get(
        action="mfa.recovery_codes_generated", detail__regenerated=True
    )
    assert_account_entry(regenerated, reauthenticated)


def test_changing_the_password(client, reauthenticated, only):
    new = "another-long-passphrase-9"

    client.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": new, "password2": new},
        REMOTE_ADDR=IP,
    )

    assert_account_entry(only("auth.password_changed"), reauthenticated)


def test_confirming_an_address_and_signing_up(client, only):
    passphrase = "a-long-and-unusual-passphrase"
    client.post(
        "/accounts/signup/",
        {"email": "ada@example.com", "password1": passphrase, "password2": passphrase},
        REMOTE_ADDR=IP,
    )
    user = only("auth.signed_up").actor_user
    assert user.email == "ada@example.com"
    created = only("org.created")
    assert created.actor_user == user and created.ip == IP

    [message] = mails_to("ada@example.com")
    client.post(link_in(message, "/accounts/confirm-email/"), REMOTE_ADDR=IP)

    confirmed = only("auth.email_confirmed")
    assert_account_entry(confirmed, user)
    assert confirmed.detail == {"email": "ada@example.com"}
    assert_account_entry(only("auth.login"), user)  # confirming signs in
