"""The `backfill` CLI, installed in its own virtualenv and run as a subprocess, against the
live server, a real Celery worker and the provisioning simulator.

It talks only to the public API; it never shows a traceback: failures are one line on stderr
and an exit code that scripts can trust (see backfill_cli.client).
"""

import json
import os
import stat

import pytest

from portal.api.models import ApiToken, Scope
from portal.billing.models import Invoice
from portal.instances.models import Instance, State
from tests.cli.conftest import assert_one_line_error
from tests.instances import conftest as instance_fixtures
from tests.instances.worker import CeleryWorker, purge_broker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

catalog = instance_fixtures.catalog
quota = instance_fixtures.quota
ssh_key = instance_fixtures.ssh_key
simulator = instance_fixtures.simulator
simulator_process = instance_fixtures.simulator_process


# --- signing in and failing well -----------------------------------------------------------------


def test_login_checks_the_token_and_keeps_it_for_the_user_only(cli, team, token_of):
    token = token_of(team.member)

    result = cli("login", "--token", "-", stdin=token + "\n")

    assert result.code == 0, result.stderr
    assert "Signed in to Acme AI as" in result.stderr and "(member)" in result.stderr
    saved = cli.config_dir / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.config_dir.stat().st_mode) == 0o700
    assert json.loads(saved.read_text()) == {"url": cli.url, "token": token}
    whoami = cli("-o", "json", "whoami")  # no token given: the saved one
    assert whoami.code == 0 and whoami.json()["organization"]["slug"] == "acme"
    assert cli("logout").code == 0 and not saved.exists()


def test_a_bad_token_is_not_saved(cli, team):
    result = cli("login", "--token", "bf_00000000_nope")

    assert_one_line_error(result, 3, "not valid", "backfill login")
    assert not (cli.config_dir / "credentials.json").exists()


def test_no_token_is_one_line_and_exit_3(cli):
    assert_one_line_error(cli("instances", "list"), 3, "not signed in", "backfill login")


def test_a_revoked_token_is_one_line_and_exit_3(cli, team, token_of):
    token = token_of(team.member, name="laptop")
    ApiToken.objects.filter(name="laptop").update(revoked_at="2026-01-01T00:00:00Z")

    assert_one_line_error(cli("instances", "list", token=token), 3, "“laptop” was revoked")


def test_a_server_that_is_down_is_one_line_and_exit_7(cli, team, token_of):
    result = cli("--url", "http://127.0.0.1:9", "instances", "list", token=token_of(team.member))

    assert_one_line_error(result, 7, "Cannot reach http://127.0.0.1:9")


def test_a_launch_refused_for_quota_is_one_line_and_exit_6(
    cli, team, catalog, quota, ssh_key, token_of
):
    instance_fixtures.set_quota(team.organization, catalog.us_east, catalog.h100, on_demand=4)

    result = cli(
        "instances", "launch", "big", "--type", "gpu_8x_h100", "--region", "us-east-1",
        token=token_of(team.member),
    )  # fmt: skip

    assert_one_line_error(result, 6, "limit there is 4 GPUs", "backfill quotas request")
    assert not Instance.objects.exists()


def test_a_role_that_may_not_is_exit_4_and_no_such_instance_exit_5(
    cli, team, catalog, quota, ssh_key, token_of
):
    viewer = token_of(team.viewer, scope=Scope.READ)
    assert_one_line_error(cli("invoices", "list", token=viewer), 4, "viewer")
    assert_one_line_error(cli("instances", "show", "999999", token=viewer), 5)
    assert_one_line_error(cli("instances", "show", "ghost", token=viewer), 5, "ghost")


def test_bad_command_lines_are_exit_2_with_the_usage(cli):
    result = cli("instances", "launch", "x", "--region", "us-east-1")

    assert result.code == 2 and "--type" in result.stderr and "Traceback" not in result.stderr


def test_help_reads_well(cli):
    top = cli("--help")
    launch = cli("instances", "launch", "--help")

    assert top.code == 0 and launch.code == 0
    for command in ("login", "instances", "quotas", "prices", "usage", "invoices", "clusters"):
        assert command in top.stdout
    assert "Exit codes" in top.stdout and "8 --wait" in top.stdout.replace("\n", " ")
    assert "--wait" in launch.stdout and "--ssh-key" in launch.stdout


# --- instances, against a real worker and the simulator -----------------------------------------


@pytest.fixture
def worker(simulator, live_server, tmp_path):
    """A real Celery worker on the test database and the simulator, with short delays so that
    the CLI's progress line has states to show."""
    simulator.control.set_delays(provision=1.5, start=1, stop=1, reboot=1, terminate=1, jitter=0)
    purge_broker()
    process = CeleryWorker(
        tmp_path, simulator=simulator, extra_env={"TEST_WORKER_POLL_INTERVAL": "0.3"}
    ).start()
    yield process
    process.stop()


def test_launch_wait_ssh_and_terminate(cli, team, catalog, quota, ssh_key, token_of, worker):
    assert cli("login", "--token", token_of(team.member)).code == 0

    launched = cli(
        "instances", "launch", "trainer", "--type", "gpu_1x_h100", "--region", "us-east-1",
        "--wait", "--timeout", "60",
    )  # fmt: skip

    assert launched.code == 0, launched.stderr + worker.log()[-3000:]
    instance = Instance.objects.get(name="trainer")
    assert instance.state == State.RUNNING
    # Plain progress lines off a terminal: one per state it went through, then the command.
    assert f"trainer (#{instance.pk}): pending" in launched.stderr
    assert "is running" in launched.stderr
    ssh_command = launched.stdout.strip()
    assert ssh_command.startswith("ssh ") and instance.ip in ssh_command

    printed = cli("instances", "ssh", "trainer")
    assert printed.code == 0 and printed.stdout.strip() == ssh_command

    listed = cli("-o", "json", "instances", "list")
    assert [(i["name"], i["state"]) for i in listed.json()] == [("trainer", "running")]
    table = cli("instances", "list")
    assert "trainer" in table.stdout and "running" in table.stdout

    refused = cli("instances", "terminate", "trainer")  # no terminal to confirm on
    assert_one_line_error(refused, 2, "--yes")
    ended = cli("instances", "terminate", "trainer", "--yes", "--wait", "--timeout", "60")
    assert ended.code == 0, ended.stderr
    instance.refresh_from_db()
    assert instance.state == State.TERMINATED
    assert cli("-o", "json", "instances", "list").json() == []
    assert_one_line_error(cli("instances", "ssh", str(instance.pk)), 6, "no address")


def test_wait_says_when_the_launch_failed(
    cli, team, catalog, quota, ssh_key, token_of, worker, simulator
):
    simulator.control.set_faults(boot_failure_rate=1.0)

    result = cli(
        "instances", "launch", "doomed", "--type", "gpu_1x_h100", "--region", "us-east-1",
        "--wait", "--timeout", "60", token=token_of(team.member),
    )  # fmt: skip

    assert result.code == 8, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("backfill: error: doomed")
    assert "failed" in result.stderr and "Traceback" not in result.stderr


# --- quotas, prices, usage, invoices -------------------------------------------------------------


def test_quotas_list_and_request(cli, team, catalog, quota, token_of):
    owner = token_of(team.owner)

    listed = cli("-o", "json", "quotas", "list", token=owner)
    asked = cli(
        "quotas", "request", "--region", "eu-west-1", "--gpu", "l40s", "--limit", "64",
        "--why", "Inference for a launch week.", token=owner,
    )  # fmt: skip

    assert listed.code == 0
    assert {(q["region"], q["gpu_model"]) for q in listed.json()} >= {("us-east-1", "h100")}
    assert asked.code == 0, asked.stderr
    assert "for 64 l40s GPUs in eu-west-1" in asked.stderr
    table = cli("quotas", "list", token=owner)
    assert "0 of 16" in table.stdout


def test_prices_and_their_history(cli, team, catalog, token_of):
    token = token_of(team.viewer, scope=Scope.READ)

    now = cli("prices", token=token)
    history = cli("-o", "json", "prices", "--history", "--type", "gpu_2x_h100", token=token)

    assert now.code == 0 and "gpu_1x_h100" in now.stdout and "2.49" in now.stdout
    assert history.code == 0
    assert [p["on_demand_hourly"] for p in history.json()] == ["4.9800"]


def test_usage_of_a_month_and_an_invoice_download(cli, team, catalog, token_of, tmp_path):
    from django.utils import timezone

    from portal.billing.periods import Month
    from tests.api.test_billing import _invoice_for

    month = Month.of(timezone.now()).previous()
    invoice = _invoice_for(team.owner, catalog, month)
    token = token_of(team.billing, scope=Scope.READ)

    usage = cli("-o", "json", "usage", "--month", month.key, token=token)
    listed = cli("invoices", "list", token=token)
    target = tmp_path / "invoice.pdf"
    downloaded = cli("invoices", "download", invoice.number, "--file", str(target), token=token)
    as_csv = cli("-o", "json", "invoices", "download", str(invoice.pk), "--format", "csv",
                 "--file", str(tmp_path / "i.csv"), token=token)  # fmt: skip

    assert usage.code == 0 and usage.json()["month"] == month.key
    assert listed.code == 0 and invoice.number in listed.stdout
    assert downloaded.code == 0, downloaded.stderr
    assert target.read_bytes().startswith(b"%PDF-")
    assert as_csv.json()["format"] == "csv" and (tmp_path / "i.csv").read_text()
    assert_one_line_error(cli("usage", "--month", "2999-01", token=token), 1, "not begun")
    assert Invoice.objects.count() == 1


def test_clusters_say_when_the_server_has_none(cli, team, token_of):
    result = cli("clusters", "list", token=token_of(team.member))

    if result.code == 0:  # the server has clusters (issue 17 landed): a list, even empty
        assert "Traceback" not in result.stderr
    else:
        assert_one_line_error(result, 5, "no clusters API")
    assert os.environ.get("BACKFILL_TOKEN") is None  # the test's environment is untouched


# --- volumes ---------------------------------------------------------------------------------


def test_create_a_volume_and_launch_with_it_by_name(cli, team, catalog, quota, ssh_key, token_of):
    from portal.volumes.models import Attachment, Volume
    from tests.volumes.conftest import set_storage

    set_storage(team.organization, catalog.us_east, 200)
    token = token_of(team.member)

    created = cli("volumes", "create", "datasets", "-r", "us-east-1", "-s", "100", token=token)
    assert created.code == 0, created.stderr
    assert "Created datasets" in created.stderr and "100 GB" in created.stderr
    too_big = cli("volumes", "create", "more", "-r", "us-east-1", "-s", "500", token=token)
    assert_one_line_error(too_big, 6, "storage limit there is 200 GB")
    volume = Volume.objects.get()
    Volume.objects.filter(pk=volume.pk).update(state="available", backend_id="v-cli")

    launched = cli(
        "instances", "launch", "box", "-t", "gpu_1x_h100", "-r", "us-east-1", "-v", "datasets",
        token=token,
    )  # fmt: skip
    assert launched.code == 0, launched.stderr
    instance = Instance.objects.get(name="box")
    assert Attachment.objects.get(volume=volume).instance_id == instance.pk
    unknown = cli(
        "instances", "launch", "box2", "-t", "gpu_1x_h100", "-r", "us-east-1", "-v", "nope",
        token=token,
    )  # fmt: skip
    assert_one_line_error(unknown, 2, "No volume is named 'nope'")
