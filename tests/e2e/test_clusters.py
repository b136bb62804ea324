"""A customer launches a 2-node cluster with a 100 GB volume from the launch page, watches both
nodes come up without reloading, sees the head's SSH command, terminates it with the typed
confirmation, and finds the volume still there.

End to end as tests/e2e/test_instances.py: the live server, a real Celery worker process running
the cluster's one task against the simulator (a subprocess with real delays), the same database.
Screenshots of the cluster page at 1280 and 390 px go to var/screenshots/.
"""

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from portal.clusters.models import Cluster, State
from portal.volumes import services as volume_services
from portal.volumes.models import State as VolumeState
from portal.volumes.models import Volume
from tests.e2e.test_instances import backend, slow_simulator, worker  # noqa: F401  fixtures
from tests.instances import conftest as instance_fixtures
from tests.volumes.conftest import set_storage

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

catalog = instance_fixtures.catalog
quota = instance_fixtures.quota
ssh_key = instance_fixtures.ssh_key

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def test_launch_a_two_node_cluster_watch_it_come_up_and_terminate_it(
    page,
    live_server,
    login,
    team,
    catalog,
    quota,
    ssh_key,
    worker,  # noqa: F811
):
    SHOTS.mkdir(parents=True, exist_ok=True)
    set_storage(team.organization, catalog.us_east, 1000)
    volume = volume_services.volume_create(
        membership=team.member, region=catalog.us_east, name="datasets", size_gb=100
    )
    deadline = time.monotonic() + 30
    while Volume.objects.get(pk=volume.pk).state != VolumeState.AVAILABLE:  # the worker makes it
        assert time.monotonic() < deadline, "the volume did not become available"
        time.sleep(0.2)
    login(page, team.member.user)
    page.goto(f"{live_server.url}/o/acme/clusters/")
    expect(page.get_by_text("No clusters yet")).to_be_visible()
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SHOTS / "clusters-empty-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("link", name="Launch cluster").click()

    expect(page.get_by_role("heading", name="Launch a cluster")).to_be_visible()
    page.select_option("select[name=instance_type]", catalog.h100_8x.code)
    page.fill("input[name=nodes]", "2")
    page.select_option("select[name=region]", "us-east-1")
    page.select_option("select[name=image]", catalog.ubuntu.code)
    page.get_by_label(re.compile("laptop")).check()
    page.get_by_label(re.compile("datasets")).check()
    page.fill("input[name=name]", "e2e-llm")
    page.screenshot(path=str(SHOTS / "cluster-launch-1280.png"), full_page=True)
    page.get_by_role("button", name="Launch cluster").click()

    cluster = Cluster.objects.get(name="e2e-llm")
    expect(page).to_have_url(re.compile(rf"/o/acme/clusters/{cluster.pk}/$"))
    page.evaluate("window.__stillTheSamePage = true")
    state = page.get_by_test_id("cluster-state")
    expect(state).to_have_text(re.compile("Pending|Provisioning"))
    expect(state).to_have_text("Running", timeout=40_000)
    assert page.evaluate("window.__stillTheSamePage === true")  # htmx swaps, no reload

    nodes = page.get_by_test_id("node")
    expect(nodes).to_have_count(2)
    expect(nodes.nth(0)).to_contain_text("e2e-llm-0")
    expect(nodes.nth(0)).to_contain_text("Running")
    expect(nodes.nth(1)).to_contain_text("e2e-llm-1")
    expect(nodes.nth(1)).to_contain_text("Running")
    head = cluster.head()
    assert head is not None and head.ip
    expect(page.get_by_test_id("ssh-command")).to_contain_text(f"ssh ubuntu@{head.ip}")
    expect(page.get_by_test_id("timeline")).to_contain_text("All 2 nodes are running")
    expect(page.get_by_test_id("volumes")).to_contain_text("datasets")
    expect(page.get_by_test_id("volumes")).to_contain_text("/data/datasets")
    page.screenshot(path=str(SHOTS / "cluster-running-1280.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()  # laid out for the phone from the start (the side menu closed)
    expect(page.get_by_test_id("cluster-state")).to_have_text("Running")
    page.screenshot(path=str(SHOTS / "cluster-running-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.reload()

    page.fill("#confirm-name", "not-the-name")
    page.get_by_role("button", name="Terminate cluster").click()
    expect(page.get_by_text("Type the cluster's name, e2e-llm, to confirm.")).to_be_visible()
    expect(state).to_have_text("Running")
    page.fill("#confirm-name", "e2e-llm")
    page.get_by_role("button", name="Terminate cluster").click()
    expect(page.get_by_test_id("cluster-state")).to_have_text("Terminated", timeout=40_000)
    expect(page.get_by_test_id("node").nth(1)).to_contain_text("Terminated")

    cluster.refresh_from_db()
    assert cluster.state == State.TERMINATED
    machines = worker.simulator.control.state()["machines"]
    assert sorted(m["state"] for m in machines) == ["terminated", "terminated"]
    page.goto(f"{live_server.url}/o/acme/clusters/")
    expect(page.get_by_test_id("clusters")).to_contain_text("Terminated")
    assert "cluster_drive" in worker.log()  # a real worker did the work

    # The volume outlives the cluster: available, detached, still there (and still billed).
    volume.refresh_from_db()
    assert volume.state == VolumeState.AVAILABLE
    assert not volume.attachments.filter(detached_at__isnull=True).exists()
    page.goto(f"{live_server.url}/o/acme/volumes/{volume.pk}/")
    expect(page.get_by_text("datasets").first).to_be_visible()
    expect(page.get_by_text("Available").first).to_be_visible()
    page.screenshot(path=str(SHOTS / "cluster-volume-after-1280.png"), full_page=True)
