"""With the mail server down, the portal still answers; the mails go out once it is back.

A real Celery worker sends the outbox through Django's SMTP backend to a port where, at first,
nothing listens; the pages answer normally meanwhile. Then an SMTP sink starts on that port and
every queued mail arrives, each once.
"""

import socket
import time
from collections import Counter

import pytest
from aiosmtpd.controller import Controller
from django.core import mail
from django.test import override_settings

from portal.accounts.models import User
from portal.notifications.models import Notification
from portal.quotas import services as quotas
from portal.quotas.models import QuotaRequest
from portal.quotas.services import Decision
from tests.factories import UserFactory
from tests.instances.worker import CeleryWorker, purge_broker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PASSPHRASE = "a-long-and-unusual-passphrase"


@pytest.fixture
def _mail_leaves_at_commit():
    """Here the outbox goes through the broker to a real worker, as in production."""


class Sink:
    """An SMTP server that keeps what it receives: (recipient, subject) pairs."""

    def __init__(self):
        self.received: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook
        subject = next(
            (
                line.split(":", 1)[1].strip()
                for line in envelope.content.decode("utf-8", "replace").splitlines()
                if line.lower().startswith("subject:")
            ),
            "",
        )
        self.received.extend((rcpt, subject) for rcpt in envelope.rcpt_tos)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoSimulator:
    url = "http://127.0.0.1:9"
    token = "unused"


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_pages_answer_with_the_mail_server_down_and_every_mail_arrives_once_it_is_back(
    client, team, gpu_catalog, tmp_path
):
    port = free_port()
    smtp = {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_PORT": port}
    purge_broker()
    worker = CeleryWorker(
        tmp_path,
        simulator=NoSimulator(),
        extra_env={
            "TEST_WORKER_EMAIL_BACKEND": smtp["EMAIL_BACKEND"],
            "EMAIL_PORT": str(port),
            "TEST_WORKER_NOTIFICATION_RETRY_MAX": "1",
        },
    ).start()
    staff = UserFactory(email="ops@backfill.example", is_staff=True)
    try:
        with override_settings(**smtp):
            # Sign up: the verification mail is queued, the page answers.
            response = client.post(
                "/accounts/signup/",
                {"email": "ada@example.com", "password1": PASSPHRASE, "password2": PASSPHRASE},
            )
            assert response.status_code == 302
            # Invite a colleague.
            client.force_login(team.owner.user)
            response = client.post(
                "/o/acme/members/invite/", {"email": "newcomer@example.com", "role": "member"}
            )
            assert response.status_code == 302
            # Ask for quota, and staff decide it.
            response = client.post(
                "/o/acme/quotas/requests/new/",
                {
                    "region": "us-east-1",
                    "gpu": "h100",
                    "kind": "on_demand",
                    "requested_limit": 8,
                    "justification": "Fine-tuning a 7B model for two weeks.",
                },
            )
            assert response.status_code == 302, response.content.decode()[:2000]
            quota_request = QuotaRequest.objects.get(organization=team.organization)
            quotas.quota_request_decide(
                quota_request=quota_request,
                decision=Decision.APPROVE,
                decided_by=staff,
                granted_limit=8,
            )
        assert mail.outbox == []  # nothing went out from the web process itself
        kinds = Counter(Notification.objects.values_list("kind", flat=True))
        assert kinds == {
            "account_mail": 1,
            "invitation": 1,
            "quota_request_submitted": 1,
            "quota_request_decided": 1,
        }
        # The worker tries and fails while the server is down; nothing is lost.
        wait_for(
            # An attempt counts once its failure is written (a claim alone is not a failure).
            lambda: (
                Notification.objects.filter(attempts__gte=1, sent_at=None)
                .exclude(last_error="")
                .count()
                == 4
            ),
            30,
            "the worker's first attempts",
        )
        assert "Connection refused" in Notification.objects.first().last_error

        sink = Sink()
        controller = Controller(sink, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            wait_for(
                lambda: not Notification.objects.filter(sent_at=None).exists(),
                60,
                "the queued mails to leave",
            )
            time.sleep(3)  # a retry or sweep running late would send a second copy now
        finally:
            controller.stop()
    finally:
        worker.stop()

    owners_and_admins = {team.owner.user.email, team.admin.user.email}
    recipients = Counter(rcpt for rcpt, _subject in sink.received)
    assert recipients["ada@example.com"] == 1
    assert recipients["newcomer@example.com"] == 1
    assert all(recipients[address] == 1 for address in owners_and_admins)
    assert sum(recipients.values()) == len(sink.received) == len(set(sink.received))
    assert User.objects.filter(email="ada@example.com").exists()
