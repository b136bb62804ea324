"""A customer who uses no mouse: signs in, skips the navigation, reaches the launch page and
launches an instance with the keyboard alone, every stop of the way with a visible focus ring."""

import re

import pytest
from playwright.sync_api import expect

from portal.instances.models import Instance
from tests.factories import PASSWORD
from tests.instances import conftest as instance_fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

catalog = instance_fixtures.catalog
quota = instance_fixtures.quota
ssh_key = instance_fixtures.ssh_key

FOCUSED = "(selector) => document.activeElement && document.activeElement.matches(selector)"


def tab_to(page, selector: str, *, limit: int = 80) -> None:
    """Press Tab until the focus is on `selector`; the focused element must show where it is."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(FOCUSED, selector):
            outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", f"{selector} has the focus but shows no focus ring"
            return
    raise AssertionError(f"Tab never reached {selector}")


def press_until(page, key: str, selector: str, condition: str, *, limit: int = 20) -> None:
    """Press `key` (an arrow) on the focused control until `condition` holds for `selector`."""
    for _ in range(limit):
        check = f"() => {{ const e = document.querySelector({selector!r}); return {condition}; }}"
        if page.evaluate(check):
            return
        page.keyboard.press(key)
    raise AssertionError(f"{key} never made {condition} of {selector}")


def test_sign_in_and_launch_an_instance_with_the_keyboard_alone(
    page, live_server, team, catalog, quota, ssh_key, a11y
):
    member = team.member.user
    page.goto(f"{live_server.url}/accounts/login/")
    tab_to(page, "input[name=login]")
    page.keyboard.type(member.email)
    tab_to(page, "input[name=password]")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/o/acme/$"))

    # The first Tab offers to skip the navigation.
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED, ".skip-link")
    expect(page.locator(".skip-link")).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#content$"))

    page.goto(f"{live_server.url}/o/acme/instances/")
    tab_to(page, "a[href='/o/acme/instances/launch/']")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Launch an instance")).to_be_visible()

    # A radio group: Tab enters it, the arrows choose within it.
    tab_to(page, "input[name=instance_type]")
    page.keyboard.press("Space")
    press_until(page, "ArrowDown", "input[name=instance_type]:checked", "e.value === 'gpu_1x_h100'")
    expect(page.get_by_label("1x H100 80GB")).to_be_checked()
    tab_to(page, "select[name=region]")
    press_until(page, "ArrowDown", "select[name=region]", "e.value === 'us-east-1'")
    tab_to(page, "select[name=image]")
    press_until(page, "ArrowDown", "select[name=image]", f"e.value === {catalog.ubuntu.code!r}")
    tab_to(page, "input[name=ssh_keys]")  # the only key comes ticked; Space would untick it
    expect(page.get_by_label(re.compile("laptop"))).to_be_checked()
    page.keyboard.press("Space")
    expect(page.get_by_label(re.compile("laptop"))).not_to_be_checked()
    page.keyboard.press("Space")
    expect(page.get_by_label(re.compile("laptop"))).to_be_checked()
    tab_to(page, "input[name=name]")
    page.keyboard.type("kb-box")
    expect(page.get_by_test_id("summary")).to_contain_text("Quota left")
    tab_to(page, "[data-testid=launch]")
    page.keyboard.press("Enter")

    expect(page).to_have_url(re.compile(r"/o/acme/instances/\d+/$"))
    instance = Instance.objects.get(name="kb-box")
    assert page.url.endswith(f"/o/acme/instances/{instance.pk}/")
    assert instance.instance_type.code == "gpu_1x_h100" and instance.region.code == "us-east-1"
    assert [key["name"] for key in instance.ssh_keys] == ["laptop"]
    a11y(page)
