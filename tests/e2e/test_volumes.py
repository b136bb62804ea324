"""A customer creates a 100 GB volume on the Volumes page, watches it become available, launches
an instance with it from the volume's page, cannot delete it while attached, terminates the
instance, and finds the volume still there, free, and billed.

End to end as tests/e2e/test_instances.py: the live server, a real Celery worker process
(volume and instance tasks) against the simulator (a subprocess with real delays), the same
database. Screenshots at 1280 and 390 px go to var/screenshots/.
"""

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from portal.billing.storage import storage_lines
from portal.catalog.models import StoragePrice
from portal.instances.models import Instance
from portal.instances.models import State as InstanceState
from portal.volumes.models import State, Volume
from tests.e2e.test_instances import backend, slow_simulator, worker  # noqa: F401  fixtures
from tests.instances import conftest as instance_fixtures
from tests.volumes.conftest import set_storage

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

catalog = instance_fixtures.catalog
quota = instance_fixtures.quota
ssh_key = instance_fixtures.ssh_key

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def shoot(page, name: str) -> None:
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(500)  # the navigation's slide-out transition ends
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_create_a_volume_launch_with_it_terminate_and_it_remains_billed(
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
    set_storage(team.organization, catalog.us_east, 500)
    StoragePrice.objects.create(
        region=catalog.us_east,
        valid_from=timezone.now() - timedelta(days=1),
        per_gb_month=Decimal("0.20"),
    )
    login(page, team.member.user)
    page.goto(f"{live_server.url}/o/acme/volumes/")
    expect(page.get_by_test_id("volumes-empty")).to_be_visible()
    shoot(page, "volumes-empty")

    page.get_by_test_id("volumes-empty").get_by_role("link", name="Create a volume").click()
    page.fill("input[name=name]", "datasets")
    page.select_option("select[name=region]", "us-east-1")
    page.fill("input[name=size_gb]", "0")
    page.get_by_role("button", name="Create volume").click()
    expect(page.get_by_text("A volume needs a size of at least 1 GB.")).to_be_visible()
    page.fill("input[name=size_gb]", "100")
    shoot(page, "volume-create")
    page.get_by_role("button", name="Create volume").click()

    volume = Volume.objects.get(name="datasets")
    expect(page).to_have_url(re.compile(rf"/o/acme/volumes/{volume.pk}/$"))
    expect(page.get_by_test_id("volume-state").first).to_have_text("Available", timeout=30_000)
    expect(page.get_by_test_id("not-attached")).to_be_visible()
    shoot(page, "volume-detail")

    page.get_by_test_id("launch-with").click()
    expect(page.get_by_role("heading", name="Launch an instance")).to_be_visible()
    expect(page.get_by_label(re.compile("datasets"))).to_be_checked()
    page.get_by_label("1x H100 80GB").check()
    page.select_option("select[name=image]", catalog.ubuntu.code)
    page.get_by_label(re.compile("laptop")).check()
    page.fill("input[name=name]", "e2e-vol-box")
    page.locator("#launch-volumes").scroll_into_view_if_needed()
    shoot(page, "launch-with-volume")
    page.get_by_test_id("launch").click()

    instance = Instance.objects.get(name="e2e-vol-box")
    expect(page).to_have_url(re.compile(rf"/o/acme/instances/{instance.pk}/$"))
    expect(page.get_by_test_id("state").first).to_have_text("Running", timeout=30_000)
    expect(page.get_by_test_id("instance-volumes")).to_contain_text("/data/datasets")
    machine = next(
        m for m in worker.simulator.control.state()["machines"] if m["name"] == "e2e-vol-box"
    )
    assert machine["volumes"] == [Volume.objects.get(pk=volume.pk).backend_id]
    worker.simulator.control.write_file(machine["id"], "/data/datasets/ckpt.txt", "step-100")

    # Attached: the delete page says so and refuses.
    page.goto(f"{live_server.url}/o/acme/volumes/{volume.pk}/delete/")
    expect(page.get_by_test_id("attached-warning")).to_contain_text("e2e-vol-box")
    page.fill("input[name=confirm_name]", "datasets")
    page.get_by_role("button", name="Delete volume and data").click()
    expect(page.get_by_text("Terminate that instance first")).to_be_visible()
    assert Volume.objects.get(pk=volume.pk).state == State.AVAILABLE

    page.goto(f"{live_server.url}/o/acme/instances/{instance.pk}/")
    page.fill("#confirm-name", "e2e-vol-box")
    page.get_by_role("button", name="Terminate instance").click()
    expect(page.get_by_test_id("state").first).to_have_text("Terminated", timeout=30_000)

    page.goto(f"{live_server.url}/o/acme/volumes/{volume.pk}/")
    expect(page.get_by_test_id("volume-state").first).to_have_text("Available")
    expect(page.get_by_test_id("not-attached")).to_be_visible()
    expect(page.get_by_test_id("events")).to_contain_text("Detached: instance e2e-vol-box ended.")
    shoot(page, "volume-after-terminate")
    page.goto(f"{live_server.url}/o/acme/volumes/")
    expect(page.get_by_test_id("volume-datasets")).to_contain_text("100 GB")
    shoot(page, "volumes-list")
    instance.refresh_from_db()
    assert instance.state == InstanceState.TERMINATED

    # Still billed after the instance ended: its size period is open and rates above zero.
    volume.refresh_from_db()
    assert volume.sizes.get().end is None
    now = timezone.now()
    (line,) = storage_lines(
        organization_id=team.organization.pk,
        start=now.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
        end=now + timedelta(days=1),
        now=now,
    )
    assert line.seconds >= 100  # GB-seconds: 100 GB for at least a second
    # And the data is there for the next machine (written by the first).
    assert worker.simulator.control.state()["volumes"][0]["files"] == {"ckpt.txt": "step-100"}
