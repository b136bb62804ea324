"""Webhook URLs never reach inside: refused at creation and at delivery, in every settings
module; resolved once and connected to the checked address; errors that map no ports.

The tests' own receivers listen on 127.0.0.1, which is refused like any loopback address unless
the explicit allow-list OUTBOUND_ALLOWED_NETWORKS names it (the `local_receivers` fixture).
"""

import socket
import ssl
import threading
from pathlib import Path

import pytest

from portal.lib.errors import ApplicationError
from portal.webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint
from portal.webhooks.services import webhook_emit, webhook_endpoint_create, webhook_url_clean
from portal.webhooks.tasks import webhook_deliver
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.django_db

INSIDE = [
    "http://127.0.0.1:5432/",
    "http://localhost:6379/",
    "https://localhost:6379/",
    "https://[::1]:6379/",
    "https://2130706433/",
    "https://0x7f000001/",
    "https://127.1/",
    "https://0177.0.0.1/",
    "https://0.0.0.0/",
    "https://[::]/",
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:7f00:1]/",
    "https://[64:ff9b::7f00:1]/",
    "https://[2002:7f00:1::]/",
    "https://[fe80::1]/",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.5/",
    "https://100.64.0.1/",
    "https://224.0.0.1/",
    "https://240.0.0.1/",
    "https://[fc00::1]/",
]


@pytest.fixture(autouse=True)
def _recorded(monkeypatch):
    monkeypatch.setattr("portal.webhooks.tasks.webhook_deliver.delay", lambda pk: None)


@pytest.fixture
def nothing_allowed(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    return settings


@pytest.fixture
def local_receivers(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.WEBHOOK_RETRY_BASE = 0
    settings.WEBHOOK_TIMEOUT = (1.0, 1.0)
    return settings


@pytest.fixture
def dns(monkeypatch):
    """`dns["hooks.example.com"] = "127.0.0.1"`: what the resolver answers for a name."""
    answers: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            family = socket.AF_INET6 if ":" in answers[host] else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr("portal.lib.safehttp.socket.getaddrinfo", getaddrinfo)
    return answers


def emit(team) -> WebhookDelivery:
    [delivery_id] = webhook_emit(
        organization=team.organization,
        event_type="instance.state_changed",
        payload={"instance": {"id": 7}, "to_state": "running"},
    )
    return WebhookDelivery.objects.get(pk=delivery_id)


@pytest.mark.parametrize("url", INSIDE)
def test_an_address_inside_is_refused_at_creation(team, nothing_allowed, url):
    with pytest.raises(ApplicationError) as raised:
        webhook_endpoint_create(membership=team.owner, url=url, event_types=["invoice.issued"])

    assert raised.value.field == "url"
    assert not WebhookEndpoint.objects.exists()


def test_a_name_that_resolves_to_loopback_is_refused_at_creation(team, nothing_allowed, dns):
    dns["hooks.example.com"] = "127.0.0.1"
    dns["six.example.com"] = "::1"
    for url in ("https://hooks.example.com/in", "https://six.example.com/in"):
        with pytest.raises(ApplicationError, match="public addresses only"):
            webhook_url_clean(url)


def test_a_name_that_later_resolves_inside_is_refused_at_delivery(team, nothing_allowed, dns):
    """DNS rebinding: public when saved, loopback when sent. Nothing is sent, and the error
    names no address."""
    dns["hooks.example.com"] = "93.184.216.34"
    webhook_endpoint_create(
        membership=team.owner,
        url="https://hooks.example.com/in",
        event_types=["instance.state_changed"],
    )
    dns["hooks.example.com"] = "127.0.0.1"
    delivery = emit(team)

    assert webhook_deliver.apply(args=(delivery.pk,)).get() is False

    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED
    error = delivery.attempt_log.get().error
    assert error == "refused: the host is not a public internet address"
    assert "127.0.0.1" not in error


def test_the_connection_goes_to_the_checked_address_with_the_hosts_name(team, local_receivers, dns):
    """Resolved once: the POST reaches the address that was checked, Host names the URL's host."""
    with Receiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        dns["hooks.example.com"] = "127.0.0.1"
        local_receivers.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
        webhook_endpoint_create(
            membership=team.owner,
            url=f"http://hooks.example.com:{port}/hooks",
            event_types=["instance.state_changed"],
        )
        assert webhook_deliver.apply(args=(emit(team).pk,)).get() is True
    [received] = receiver.requests
    assert received.headers["Host"] == f"hooks.example.com:{port}"


def test_https_sends_the_hosts_name_as_the_tls_server_name(team, local_receivers, dns):
    """Connected to the checked address, the TLS handshake still names the URL's host (SNI)."""
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve():
        connection, _ = server.accept()
        try:
            context.wrap_socket(connection, server_side=True)  # fails: no certificate
        except (ssl.SSLError, OSError):
            pass
        finally:
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    dns["hooks.example.com"] = "127.0.0.1"
    webhook_endpoint_create(
        membership=team.owner,
        url=f"https://hooks.example.com:{port}/hooks",
        event_types=["instance.state_changed"],
    )
    delivery = emit(team)
    webhook_deliver.apply(args=(delivery.pk,))
    thread.join(5)
    server.close()

    assert names[:1] == ["hooks.example.com"]
    assert delivery.attempt_log.first().error == "connection failed"


def test_a_closed_port_and_a_silent_one_say_only_failed_or_timed_out(team, local_receivers):
    """The errors a customer reads do not tell a closed port from a filtered one's details."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    local_receivers.WEBHOOK_MAX_ATTEMPTS = 1
    for port, expected in ((closed, "connection failed"), (silent.getsockname()[1], "timed out")):
        WebhookEndpoint.objects.all().delete()
        webhook_endpoint_create(
            membership=team.owner,
            url=f"http://127.0.0.1:{port}/hooks",
            event_types=["instance.state_changed"],
        )
        delivery = emit(team)
        webhook_deliver.apply(args=(delivery.pk,))
        assert delivery.attempt_log.get().error == expected
    silent.close()


def test_plain_http_needs_the_allow_list(team, nothing_allowed):
    with pytest.raises(ApplicationError, match="HTTPS only"):
        webhook_url_clean("http://127.0.0.1:9000/hooks")
    nothing_allowed.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    assert webhook_url_clean("http://127.0.0.1:9000/hooks") == "http://127.0.0.1:9000/hooks"


@pytest.mark.parametrize("module", ["dev", "production", "test"])
def test_no_settings_module_allows_an_address_inside(module):
    """The allow-list is empty in every settings module (tests set it where they need it)."""
    text = (Path(__file__).parents[2] / "portal" / "settings" / f"{module}.py").read_text()
    assert "OUTBOUND_ALLOWED_NETWORKS" not in text
    assert "WEBHOOKS_ALLOW_HTTP_LOCALHOST" not in text
