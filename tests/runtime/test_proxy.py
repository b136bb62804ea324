"""Proxy headers count only from TRUSTED_PROXIES; from anyone else they are dropped."""

import pytest

from portal.audit.models import AuditEntry
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

FORGED = {
    "HTTP_X_FORWARDED_FOR": "203.0.113.66",
    "HTTP_X_FORWARDED_PROTO": "https",
    "HTTP_X_REQUEST_ID": "chosen-by-the-client",
}


def _log_in(client, **meta):
    user = UserFactory()
    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD}, **meta)
    assert response.status_code == 302, response.content[:300]
    return AuditEntry.objects.get(action="auth.login", actor_user=user)


def test_a_client_cannot_choose_its_address_its_scheme_or_its_request_id(client, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]

    entry = _log_in(client, REMOTE_ADDR="192.0.2.50", **FORGED)
    response = client.get("/healthz", REMOTE_ADDR="192.0.2.50", **FORGED)

    assert entry.ip == "192.0.2.50"
    assert response["X-Request-ID"] != "chosen-by-the-client"


def test_behind_a_trusted_proxy_the_client_is_the_last_untrusted_hop(client, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]

    entry = _log_in(
        client,
        REMOTE_ADDR="10.0.0.7",  # our load balancer
        # The client wrote the first hop itself; our proxies appended the others.
        HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.9, 10.0.0.3",
    )

    assert entry.ip == "198.51.100.9"


def test_a_trusted_proxys_scheme_and_request_id_are_kept(client, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.7"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True

    from_proxy = client.get("/accounts/login/", REMOTE_ADDR="10.0.0.7", **FORGED)
    from_client = client.get("/accounts/login/", REMOTE_ADDR="192.0.2.50", **FORGED)

    assert from_proxy.status_code == 200  # https, as the proxy says
    assert from_proxy["X-Request-ID"] == "chosen-by-the-client"
    assert from_client.status_code == 301  # the client's "https" is not believed
    assert from_client["Location"].startswith("https://")


def test_without_trusted_proxies_nothing_forwarded_counts(client, settings):
    settings.TRUSTED_PROXIES = []

    entry = _log_in(client, REMOTE_ADDR="127.0.0.1", **FORGED)

    assert entry.ip == "127.0.0.1"


def test_an_implausible_request_id_is_replaced(client, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.7"]

    response = client.get(
        "/healthz", REMOTE_ADDR="10.0.0.7", HTTP_X_REQUEST_ID="<script>alert(1)</script>"
    )

    assert response["X-Request-ID"] != "<script>alert(1)</script>"
    assert len(response["X-Request-ID"]) == 32
