"""The launch page and the instance page between them: a click on a region's cell in the type
table chooses that type and that region; once the instance runs, its running time counts on
without a reload. A real Celery worker and the simulator bring the instance up."""

import re

import pytest
from playwright.sync_api import expect

from portal.instances import sync
from tests.e2e.test_instances import backend, slow_simulator, worker  # noqa: F401
from tests.instances import conftest as instance_fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

catalog = instance_fixtures.catalog
quota = instance_fixtures.quota
ssh_key = instance_fixtures.ssh_key
launch = instance_fixtures.launch
simulator = instance_fixtures.simulator
simulator_process = instance_fixtures.simulator_process


def region_cell(page, instance_type: str, region: str):
    return page.locator(f"td.region-cell[data-type={instance_type}][data-region={region}]")


def test_a_click_on_a_region_cell_chooses_the_type_and_the_region(
    page, live_server, login, team, catalog, quota, ssh_key, simulator
):
    sync.capacity_refresh()  # the cells show the free GPUs of each region
    login(page, team.member.user)
    page.goto(f"{live_server.url}/o/acme/instances/launch/")
    region = page.locator("select[name=region]")
    summary = page.get_by_test_id("summary")

    region_cell(page, "gpu_1x_l40s", "eu-west-1").get_by_text("GPUs free").click()
    expect(page.get_by_label("1x L40S 48GB")).to_be_checked()
    expect(region).to_have_value("eu-west-1")
    expect(page.locator("tr.chosen")).to_contain_text("1x L40S 48GB")
    expect(summary).to_contain_text("1x L40S 48GB, on-demand")
    expect(summary).to_contain_text("eu-west-1")

    region_cell(page, "gpu_1x_h100", "us-east-1").get_by_text("GPUs free").click()
    expect(page.get_by_label("1x H100 80GB")).to_be_checked()
    expect(page.get_by_label("1x L40S 48GB")).not_to_be_checked()
    expect(region).to_have_value("us-east-1")
    expect(summary).to_contain_text("1x H100 80GB, on-demand")
    expect(summary.get_by_test_id("free-now")).to_contain_text("GPUs")
    expect(summary).to_contain_text("us-east-1")

    # The same type in another column: only the region changes.
    region_cell(page, "gpu_1x_h100", "eu-west-1").click()
    expect(page.get_by_label("1x H100 80GB")).to_be_checked()
    expect(region).to_have_value("eu-west-1")
    expect(summary).to_contain_text("eu-west-1")


@pytest.mark.slow  # a Celery worker and the simulator bring the instance up
def test_the_running_time_counts_on_without_a_reload(
    page,
    live_server,
    login,
    team,
    launch,
    worker,  # noqa: F811
):
    instance = launch(name="ticking")
    login(page, team.member.user)
    page.goto(f"{live_server.url}/o/acme/instances/{instance.pk}/")
    page.evaluate("window.__stillTheSamePage = true")  # gone if the page reloads
    expect(page.get_by_test_id("state").first).to_have_text("Running", timeout=30_000)

    running_time = page.get_by_test_id("running-time")
    expect(running_time).to_have_text(re.compile(r"^\d+ s$|^\d+ min \d+ s$"))
    first = running_time.inner_text()
    expect(running_time).not_to_have_text(first, timeout=5_000)
    second = running_time.inner_text()
    expect(running_time).not_to_have_text(second, timeout=5_000)
    assert page.evaluate("window.__stillTheSamePage === true")
    # The cost counts on in the pages' one money format, in the portal's currency.
    expect(page.get_by_test_id("cost")).to_have_attribute("data-currency", "USD")
    expect(page.locator("[data-testid=cost] [data-amount]")).to_have_text(re.compile(r"^\$\d"))
    assert page.evaluate("formatMoney(1234.5, 'EUR')") == "€1,234.50"
    assert page.evaluate("formatMoney(1234.5, 'CHF')") == "1,234.50 CHF"
