"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live server.

E-mail crosses a real SMTP hop: Django's SMTP backend sends to an aiosmtpd server started here.
"""

import email
import email.policy
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1366, "height": 900}}


@dataclass
class SunkMail:
    to: list[str]
    subject: str
    text: str
    html: str


@dataclass
class SmtpSink:
    host: str
    port: int
    messages: list[SunkMail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        with self.lock:
            self.messages.append(
                SunkMail(
                    to=list(envelope.rcpt_tos),
                    subject=str(message["Subject"]),
                    text=text.get_content() if text else "",
                    html=html.get_content() if html else "",
                )
            )
        return "250 Message accepted for delivery"

    def wait_for(self, *, to: str, subject_contains: str = "", timeout: float = 15) -> SunkMail:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for message in self.messages:
                    if to in message.to and subject_contains in message.subject:
                        return message
            time.sleep(0.1)
        raise AssertionError(f"No mail to {to} with {subject_contains!r}: {self.messages}")

    @staticmethod
    def first_link(message: SunkMail, contains: str = "http") -> str:
        links = re.findall(r"https?://[^\s<>\"']+", message.text)
        return next(link for link in links if contains in link)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_sink(settings, live_server):
    """A real SMTP server; the portal's mail goes to it through Django's SMTP backend."""
    sink = SmtpSink(host="127.0.0.1", port=_free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = sink.host
    settings.EMAIL_PORT = sink.port
    settings.SITE_URL = live_server.url
    yield sink
    controller.stop()


@pytest.fixture
def login(live_server):
    """Sign a user in through the real login form: `login(page, user)`."""
    from tests.factories import PASSWORD

    def sign_in(page, user, password: str = PASSWORD):
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=login]", user.email)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        secret = getattr(user, "totp_secret", None)  # staff have two-factor (tests/factories.py)
        if secret and "/accounts/2fa/authenticate/" in page.url:
            from tests.accounts.helpers import totp_code

            page.fill("input[name=code]", totp_code(secret))
            page.click("button[type=submit]")
            page.wait_for_load_state()
        return page

    return sign_in


# axe-core's impacts that fail a test; "moderate" and "minor" ones are reported, not failed.
AXE_FAILING_IMPACTS = ("serious", "critical")


@pytest.fixture(scope="session")
def _axe():
    from axe_playwright_python.sync_playwright import Axe

    return Axe()


@pytest.fixture
def a11y(_axe):
    """axe-core on the page as it is now: `a11y(page)` fails on a serious or critical violation
    (and names each, with the elements and axe's message). Call it on every page a test visits.
    """

    def check(page, *, what: str = "") -> None:
        page.wait_for_load_state()
        results = _axe.run(page)
        failing = [v for v in results.response["violations"] if v["impact"] in AXE_FAILING_IMPACTS]
        if failing:
            report = "\n".join(
                f"{v['id']} ({v['impact']}): {v['help']}\n"
                + "\n".join(f"    {node['target']} {node['html'][:160]}" for node in v["nodes"])
                for v in failing
            )
            raise AssertionError(f"axe-core on {what or page.url}:\n{report}")

    return check
