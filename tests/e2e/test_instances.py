"""A customer launches an instance from the launch page, watches it come up without reloading,
stops it, starts it and terminates it with the typed confirmation; the running e-mail arrives
through a real SMTP sink.

The honest path, end to end: the browser talks to pytest-django's live server; the launch
enqueues its task on commit into the test Redis database; a real Celery worker process
(tests/instances/worker.py: `celery -A portal worker --pool=prefork --concurrency=1 -Q
backfill`, settings tests.instances.worker_settings) runs it against the same test database
(hence `transaction=True`), calls the provisioning simulator (a subprocess with small but
real delays) and sends its e-mail over SMTP to the test's sink. No eager Celery anywhere.
"""

import re

import pytest
from playwright.sync_api import expect

from portal.instances import sync
from portal.instances.models import Instance, State
from portal.simulator.process import SimulatorProcess
from tests.instances import conftest as instance_fixtures
from tests.instances.worker import CeleryWorker, purge_broker

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

catalog = instance_fixtures.catalog
quota = instance_fixtures.quota
ssh_key = instance_fixtures.ssh_key


@pytest.fixture(scope="module")
def slow_simulator(tmp_path_factory):
    """The simulator with delays of a second or two, so that the page shows each transition."""
    with SimulatorProcess(
        tmp_path_factory.mktemp("e2e-sim") / "state.json", zero_delays=False
    ) as process:
        yield process


@pytest.fixture
def backend(slow_simulator, settings):
    slow_simulator.control.reset(catalog=instance_fixtures.FLEET)
    slow_simulator.control.set_delays(
        provision=2, start=1.5, stop=1.5, reboot=1, terminate=1.5, jitter=0
    )
    settings.SIMULATOR_URL = slow_simulator.url
    settings.PROVISIONING_TOKEN = slow_simulator.token
    return slow_simulator


@pytest.fixture
def worker(backend, smtp_sink, live_server, tmp_path):
    purge_broker()
    process = CeleryWorker(
        tmp_path,
        simulator=backend,
        extra_env={
            "TEST_WORKER_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": smtp_sink.host,
            "EMAIL_PORT": str(smtp_sink.port),
            "TEST_WORKER_SITE_URL": live_server.url,
            "TEST_WORKER_POLL_INTERVAL": "0.5",
        },
    ).start()
    yield process
    process.stop()


def _state(page):
    return page.get_by_test_id("state").first


def test_launch_watch_stop_start_terminate(
    page,
    live_server,
    smtp_sink,
    login,
    team,
    catalog,
    quota,
    ssh_key,
    worker,
):
    sync.capacity_refresh()  # what beat's periodic task does: the launch page shows free GPUs
    customer = team.member.user
    login(page, customer)
    page.goto(f"{live_server.url}/o/acme/instances/")
    expect(page.get_by_text("No instances yet")).to_be_visible()
    page.get_by_role("link", name="Launch instance").click()

    expect(page.get_by_role("heading", name="Launch an instance")).to_be_visible()
    expect(page.get_by_test_id("offers")).to_contain_text("$2.49/hour")
    expect(page.get_by_test_id("offers")).to_contain_text("64 GPUs free (64 machines)")
    page.get_by_label("1x H100 80GB").check()
    page.select_option("select[name=region]", "us-east-1")
    expect(page.get_by_test_id("summary")).to_contain_text("Quota left")  # htmx summary
    page.select_option("select[name=image]", catalog.ubuntu.code)
    page.get_by_label(re.compile("laptop")).check()
    page.fill("input[name=name]", "e2e-box")
    page.get_by_test_id("launch").click()

    instance = Instance.objects.get(name="e2e-box")
    expect(page).to_have_url(re.compile(rf"/o/acme/instances/{instance.pk}/$"))
    # From here on the page must not reload: a marker on the window survives only htmx swaps.
    page.evaluate("window.__stillTheSamePage = true")
    expect(_state(page)).to_have_text(re.compile("Pending|Provisioning"))
    expect(_state(page)).to_have_text("Running", timeout=30_000)
    assert page.evaluate("window.__stillTheSamePage === true")
    instance.refresh_from_db()
    expect(page.get_by_test_id("ssh-command")).to_contain_text(f"ssh ubuntu@{instance.ip}")
    expect(page.get_by_test_id("timeline")).to_contain_text("Running at")
    expect(page.locator("#instance-live")).to_have_attribute("data-polling", "slow")
    expect(page.get_by_test_id("launching")).to_have_count(0)

    mail = smtp_sink.wait_for(to=customer.email, subject_contains="is running", timeout=20)
    assert f"ssh ubuntu@{instance.ip}" in mail.text
    assert f"{live_server.url}/o/acme/instances/{instance.pk}/" in mail.text

    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_text("Stopping e2e-box")).to_be_visible()
    expect(_state(page)).to_have_text("Stopped", timeout=30_000)

    page.get_by_role("button", name="Start").click()
    expect(_state(page)).to_have_text("Running", timeout=30_000)

    page.fill("#confirm-name", "not-the-name")
    page.get_by_role("button", name="Terminate instance").click()
    expect(page.get_by_text("Type the instance's name, e2e-box, to confirm.")).to_be_visible()
    expect(_state(page)).to_have_text("Running")
    page.fill("#confirm-name", "e2e-box")
    page.get_by_role("button", name="Terminate instance").click()
    expect(_state(page)).to_have_text("Terminated", timeout=30_000)

    instance.refresh_from_db()
    assert instance.state == State.TERMINATED
    machines = worker.simulator.control.state()["machines"]
    assert [(m["request_id"], m["state"]) for m in machines] == [
        (str(instance.request_id), "terminated")
    ]
    page.goto(f"{live_server.url}/o/acme/instances/")
    row = page.locator("tr[data-instance=e2e-box]")
    expect(row).to_contain_text("Terminated")
    assert "instance_terminate" in worker.log()  # a real worker did the work
