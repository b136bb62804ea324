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
from urllib.parse import urlsplit

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


def axe_failures(results: dict) -> str:
    """axe-core's serious and critical violations as a report, or "" when there are none."""
    failing = [v for v in results["violations"] if v["impact"] in AXE_FAILING_IMPACTS]
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']}\n"
        + "\n".join(f"    {node['target']} {node['html'][:160]}" for node in v["nodes"])
        for v in failing
    )


def page_kind(url: str) -> str:
    """One page of the portal whatever it shows: ids, keys and organization slugs made alike."""
    parts = urlsplit(url).path.split("/")
    kind = []
    for i, part in enumerate(parts):
        if part.isdigit() or len(part) >= 20 or (i > 0 and parts[i - 1] == "o"):
            part = "*"
        kind.append(part)
    return "/".join(kind)


class PagesChecked:
    """The kinds of page axe-core has checked in this run (a test's own checks included)."""

    def __init__(self) -> None:
        from axe_playwright_python.sync_playwright import Axe

        self.axe = Axe()
        self.kinds: set[str] = set()

    def run(self, page) -> str:
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.evaluate(self.axe.axe_script)
        results = page.evaluate("axe.run({resultTypes: ['violations']})")
        return axe_failures(results)

    def check(self, page, *, what: str = "") -> None:
        page.wait_for_load_state()
        report = self.run(page)
        self.kinds.add(page_kind(page.url))
        if report:
            raise AssertionError(f"axe-core on {what or page.url}:\n{report}")


@pytest.fixture(scope="session")
def _pages_checked(pytestconfig) -> PagesChecked:
    checked = PagesChecked()
    pytestconfig.stash[PAGE_KINDS] = checked.kinds
    return checked


PAGE_KINDS = pytest.StashKey[set]()


def pytest_terminal_summary(terminalreporter, config):
    kinds = config.stash.get(PAGE_KINDS, None)
    if kinds:
        terminalreporter.write_line(
            f"axe-core: {len(kinds)} kinds of page checked, none with a serious or critical "
            "violation left standing"
        )


@pytest.fixture
def a11y(_pages_checked):
    """axe-core on the page as it is now: `a11y(page)` fails on a serious or critical violation
    (and names each, with the elements and axe's message). Call it where a page's state matters
    (a form with errors, a banner); every other page a test visits is checked after the test
    (`_axe_on_every_page_visited`).
    """
    return _pages_checked.check


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.e2e_call_failed = report.failed


class Visits:
    """The portal's pages each browser context of a test showed, in order, seen again after the
    test in the same context (signed in as it was) and checked by axe-core, one of each kind a
    run: a page a test only passes through is held to the same standard as one it asserts on."""

    def __init__(self, checked: PagesChecked, origin: str, request) -> None:
        self.checked, self.origin, self.request = checked, origin, request
        self.urls: dict[object, list[str]] = {}

    def watch(self, context) -> None:
        urls = self.urls.setdefault(context, [])

        def on_page(page) -> None:
            page.on(
                "framenavigated",
                lambda frame: frame == page.main_frame and urls.append(frame.url),
            )

        context.on("page", on_page)
        close = context.close

        def sweep_then_close(*args, **kwargs) -> None:
            try:
                self.sweep(context)
            finally:
                close(*args, **kwargs)

        context.close = sweep_then_close

    def sweep(self, context) -> None:
        urls = self.urls.pop(context, None)
        if not urls or getattr(self.request.node, "e2e_call_failed", False):
            return
        failures = []
        page = None
        for url in dict.fromkeys(urls):
            if not url.startswith(self.origin) or page_kind(url) in self.checked.kinds:
                continue
            if page is None:
                page = context.new_page()
                page.add_init_script(self.checked.axe.axe_script)
            response = page.goto(url)
            if response is None or not response.ok:
                continue
            if not response.headers.get("content-type", "").startswith("text/html"):
                continue
            page.wait_for_load_state()
            self.checked.kinds.add(page_kind(url))
            self.checked.kinds.add(page_kind(page.url))
            report = self.checked.run(page)
            if report:
                seen = page.url if page.url == url else f"{page.url} (reached from {url})"
                failures.append(f"axe-core on {seen}, seen again after the test:\n{report}")
        if page is not None:
            page.close()
        if failures:
            raise AssertionError("\n\n".join(failures))


@pytest.fixture(autouse=True)
def _axe_on_every_page_visited(request, _pages_checked, monkeypatch):
    if "browser" not in request.fixturenames or "live_server" not in request.fixturenames:
        yield
        return
    browser = request.getfixturevalue("browser")
    visits = Visits(_pages_checked, request.getfixturevalue("live_server").url, request)
    new_context = browser.new_context

    def watched_new_context(*args, **kwargs):
        context = new_context(*args, **kwargs)
        visits.watch(context)
        return context

    monkeypatch.setattr(browser, "new_context", watched_new_context)
    yield
    for context in list(visits.urls):
        context.close()
