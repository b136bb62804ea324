"""Pages that must fit their screen: on a 390 px phone the launch page and the instance list
scroll down, never sideways; the operator's instance list in the admin fits a 1366 px laptop.
Screenshots go to var/screenshots/small-screens/ for a person to look at."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from portal.instances import sync
from portal.instances.models import State
from tests.e2e.test_launch_page import region_cell
from tests.factories import UserFactory
from tests.instances import conftest as instance_fixtures
from tests.sshkeys.factories import SshKeyFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

catalog = instance_fixtures.catalog
quota = instance_fixtures.quota
ssh_key = instance_fixtures.ssh_key
make_instance = instance_fixtures.make_instance
simulator = instance_fixtures.simulator
simulator_process = instance_fixtures.simulator_process

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "small-screens"
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 900}

# How far the page scrolls sideways, and the widest elements that stick out, to name in a failure.
OVERFLOW = """() => {
  const root = document.documentElement;
  const wide = [...document.querySelectorAll("body *")]
    .filter((e) => e.getBoundingClientRect().right > root.clientWidth + 1)
    .filter((e) => !e.closest(".table-wrap") || e.matches(".table-wrap"))
    .slice(0, 5)
    .map((e) => `${e.tagName.toLowerCase()}.${[...e.classList].join(".")}`);
  return {scroll: root.scrollWidth, client: root.clientWidth, wide};
}"""


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"]
    page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)


def assert_no_sideways_scroll(page) -> None:
    page.wait_for_load_state("networkidle")
    measured = page.evaluate(OVERFLOW)
    assert measured["scroll"] <= measured["client"], (
        f"{page.url} scrolls sideways at {page.viewport_size['width']} px: "
        f"{measured['scroll']} px of content in {measured['client']} px; wide: {measured['wide']}"
    )


@pytest.fixture
def phone(browser, browser_context_args):
    context = browser.new_context(**{**browser_context_args, "viewport": PHONE})
    yield context.new_page()
    context.close()


def test_the_launch_page_fits_a_phone_without_scrolling_sideways(
    phone, live_server, login, team, catalog, quota, ssh_key, simulator
):
    sync.capacity_refresh()  # the type table shows free GPUs in each region, its widest state
    login(phone, team.member.user)
    phone.goto(f"{live_server.url}/o/acme/instances/launch/")
    expect(phone.get_by_role("heading", name="Launch an instance")).to_be_visible()
    phone.get_by_label("1x H100 80GB").check()
    expect(phone.get_by_test_id("summary")).to_contain_text("Quota left")
    assert_no_sideways_scroll(phone)
    # Every region's free GPUs and quota are on the screen, under the type, not hidden behind a
    # sideways scroll of the table.
    for region in ("us-east-1", "eu-west-1"):
        cell = region_cell(phone, "gpu_1x_h100", region)
        cell.scroll_into_view_if_needed()
        expect(cell).to_be_in_viewport(ratio=1)
        expect(cell).to_contain_text("GPUs free")
        label = cell.evaluate("td => getComputedStyle(td, '::before').content")
        assert label == f'"{region}"', f"the {region} card is headed {label}"
    shoot(phone, "launch")


def test_the_instance_list_fits_a_phone_without_scrolling_sideways(
    phone, live_server, login, team, catalog, make_instance
):
    make_instance(State.RUNNING, name="llama-finetune-eu-west-long-name", ip="203.0.113.17")
    make_instance(State.STOPPED, name="notebook", instance_type=catalog.h100_8x)
    make_instance(State.PROVISIONING, name="batch-7", preemptible=True, region=catalog.eu_west)
    make_instance(State.FAILED, name="broken", state_reason="Failed to boot: hardware fault.")
    login(phone, team.member.user)
    phone.goto(f"{live_server.url}/o/acme/instances/")
    expect(phone.locator("tr[data-instance=notebook]")).to_contain_text("Stopped")
    expect(phone.locator("tr[data-instance=broken]")).to_contain_text("Failed")
    assert_no_sideways_scroll(phone)
    # Each instance is a card with its type, region, address and cost on the screen: nothing
    # waits behind a sideways scroll of the table.
    table = phone.get_by_test_id("instances")
    hidden = table.evaluate("t => t.parentElement.scrollWidth - t.parentElement.clientWidth")
    assert hidden <= 0, f"{hidden} px of the instance list scroll sideways inside its card"
    card = phone.locator("tr[data-instance=llama-finetune-eu-west-long-name]")
    for value in ("1x H100 80GB", "us-east-1", "203.0.113.17"):
        expect(card.get_by_text(value)).to_be_in_viewport(ratio=1)
    shoot(phone, "instances")


def test_the_ssh_key_list_fits_a_phone_without_scrolling_sideways(phone, live_server, login, team):
    SshKeyFactory(membership=team.owner, name="work laptop with a rather long name")
    SshKeyFactory(membership=team.member, name="member's desktop")
    SshKeyFactory(membership=team.owner, shared=True, name="deploy")
    login(phone, team.owner.user)
    phone.goto(f"{live_server.url}/o/acme/ssh-keys/")
    expect(phone.get_by_test_id("ssh-keys")).to_contain_text("deploy")
    assert_no_sideways_scroll(phone)
    # Each key is a card: its fingerprint, whose it is and its delete button on the screen,
    # not behind a sideways scroll of the table.
    table = phone.get_by_test_id("ssh-keys")
    hidden = table.evaluate("t => t.parentElement.scrollWidth - t.parentElement.clientWidth")
    assert hidden <= 0, f"{hidden} px of the key list scroll sideways inside its card"
    card = table.locator("tr", has_text="member's desktop")
    expect(card.locator(".mono")).to_be_in_viewport(ratio=1)
    expect(card.get_by_text(team.member.user.display_name)).to_be_in_viewport(ratio=1)
    expect(card.get_by_role("link", name="Delete member's desktop")).to_be_in_viewport(ratio=1)
    shoot(phone, "ssh-keys")


def test_staff_read_every_column_of_the_admin_instance_list_on_a_laptop(
    page, live_server, login, team, outsider, catalog, make_instance
):
    for n in range(3):
        make_instance(State.RUNNING, name=f"train-{n}", ip=f"203.0.113.{n + 10}")
    make_instance(
        State.RUNNING,
        name="spot-preemptible-with-a-rather-long-name-7",
        organization=outsider.organization,
        preemptible=True,
        region=catalog.eu_west,
        running_since=timezone.now() - timedelta(hours=30),
    )
    make_instance(State.TERMINATED, name="ended", terminated_at=timezone.now())
    staff = UserFactory(email="ops@backfill.example", is_staff=True, is_superuser=True)
    page.set_viewport_size(LAPTOP)
    login(page, staff)  # with the authenticator app's code: the admin needs two-factor
    page.goto(f"{live_server.url}/admin/instances/instance/")
    expect(page.locator("#result_list")).to_contain_text(
        "spot-preemptible-with-a-rather-long-name-7"
    )
    expect(page.locator("#result_list tbody tr")).to_have_count(5)
    assert_no_sideways_scroll(page)
    # Every column in view: the navigation sidebar starts closed at this width, so the table
    # fits beside the filters instead of scrolling inside its box.
    expect(page.locator("#nav-sidebar")).not_to_be_visible()
    results = page.locator("#changelist .results")
    clipped = results.evaluate("box => box.scrollWidth - box.clientWidth")
    assert clipped <= 0, f"the instance table is {clipped} px wider than its box at 1366 px"
    expect(page.get_by_role("cell", name="203.0.113.10")).to_be_in_viewport()
    shoot(page, "admin-instances")
    # The staff member's own choice stands: opened, the sidebar stays open on the next page.
    page.locator("#toggle-nav-sidebar").click()
    page.reload()
    expect(page.locator("#nav-sidebar")).to_be_visible()
