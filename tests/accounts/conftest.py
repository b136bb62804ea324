import pytest
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

from tests.factories import PASSWORD, UserFactory


@pytest.fixture
def log_in(client):
    """Submit the real login form: `log_in(email, password)`; returns the response."""

    def submit(email: str, password: str = PASSWORD, next_url: str = ""):
        url = "/accounts/login/" + (f"?next={next_url}" if next_url else "")
        return client.post(url, {"login": email, "password": password})

    return submit


@pytest.fixture
def user_with_totp(db):
    """A user who has turned on an authenticator app; `.secret` and `.recovery_codes` attached."""
    user = UserFactory()
    user.secret = generate_totp_secret()
    TOTP.activate(user, user.secret)
    user.recovery_codes = RecoveryCodes.activate(user).generate_codes()
    return user


from tests.instances.conftest import catalog, make_instance, quota  # noqa: E402, F401
