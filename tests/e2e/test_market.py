"""The spot market in the browser: the public pricing page shows the charts without signing in;
"Notify me" on a full offer, capacity freed in the simulator, the alert's e-mail arrives through
the SMTP sink with a link that opens the launch page on that offer. Screenshots at 1280 and
390 px go to var/screenshots/market/ for a person to look at."""

import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from portal.instances import sync
from portal.market import tasks as market_tasks
from portal.market.models import CapacityAlert, PriceReason, SpotPrice
from portal.market.services import spot_price_history_add
from portal.provisioning import get_backend
from tests.instances import conftest as instance_fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

catalog = instance_fixtures.catalog
quota = instance_fixtures.quota
ssh_key = instance_fixtures.ssh_key
simulator = instance_fixtures.simulator
simulator_process = instance_fixtures.simulator_process

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "market"


def _shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(500)  # the sidebar's slide settles at the new width
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def _history(catalog):
    """A week of spot prices for the 1x H100 in us-east-1, a change every 6 hours."""
    now = timezone.now().replace(microsecond=0)
    start = now - timedelta(days=7, hours=1)
    rows = []
    for n in range(29):
        price = Decimal("0.90") + Decimal((n * 7) % 11) * Decimal("0.07")
        following = start + timedelta(hours=6 * (n + 1))
        rows.append(
            SpotPrice(
                region=catalog.us_east,
                instance_type=catalog.h100_1x,
                price=price,
                valid_from=start + timedelta(hours=6 * n),
                valid_until=following if n < 28 else None,
                reason=PriceReason.MARKET,
            )
        )
    return spot_price_history_add(rows=rows)


def test_the_public_pricing_page_shows_the_chart_without_login(page, live_server, catalog):
    rows = _history(catalog)
    page.goto(f"{live_server.url}/pricing/")
    expect(page.get_by_role("heading", name="GPU prices")).to_be_visible()
    offer = page.get_by_test_id("offer-gpu_1x_h100-us-east-1")
    expect(offer.get_by_test_id("spot-now")).to_contain_text(f"{rows[-1].price:.2f}")
    chart = offer.locator("svg path.price-line")
    expect(chart).to_be_visible()
    assert chart.get_attribute("d").count("V") >= 20  # a step for each change in the week
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    _shoot(page, "pricing")


def test_notify_me_on_a_full_offer_then_the_email_with_a_launch_link(
    page, live_server, smtp_sink, login, team, catalog, quota, ssh_key, simulator
):
    backend = get_backend()
    # eu-west-1 has one 8-GPU H100 node in the simulator: fill it.
    machines = [
        backend.create(
            request_id=str(uuid.uuid4()),
            instance_type="gpu_1x_h100",
            region="eu-west-1",
            image="ubuntu-22.04-cuda-12.4",
            ssh_keys=[],
            name=f"internal-{n}",
            preemptible=False,
        )
        for n in range(8)
    ]
    sync.capacity_refresh()
    _history(catalog)
    customer = team.member.user
    login(page, customer)
    page.goto(f"{live_server.url}/o/acme/instances/launch/")
    page.get_by_label("1x H100 80GB").check()
    page.select_option("select[name=region]", "us-east-1")
    expect(page.get_by_test_id("summary").get_by_test_id("price-chart")).to_be_visible()
    _shoot(page, "launch-spot")
    notify = page.get_by_test_id("notify-gpu_1x_h100-eu-west-1")
    expect(notify).to_be_visible()
    notify.click()
    expect(page.get_by_role("heading", name="Capacity alerts")).to_be_visible()
    expect(page.locator("select[name=region]")).to_have_value("eu-west-1")
    page.fill("input[name=count]", "2")
    page.get_by_role("button", name="Notify me").click()
    expect(
        page.get_by_text("We will e-mail you when 2 x 1x H100 80GB are free in eu-west-1")
    ).to_be_visible()
    assert CapacityAlert.objects.get().created_by == customer
    _shoot(page, "alerts")

    # Capacity comes back: the next snapshot (what beat's task does) fires the alert.
    for machine_id in machines[:3]:
        backend.terminate(machine_id)
    sync.capacity_refresh()
    market_tasks.after_capacity_snapshot()  # the task the snapshot enqueued, run here
    mail = smtp_sink.wait_for(to=customer.email, subject_contains="free in eu-west-1")
    link = smtp_sink.first_link(mail, contains="/instances/launch/")
    assert "instance_type=gpu_1x_h100" in link and "region=eu-west-1" in link
    page.goto(link)
    expect(page.get_by_role("heading", name="Launch an instance")).to_be_visible()
    expect(page.locator("#type-gpu_1x_h100")).to_be_checked()
    expect(page.locator("select[name=region]")).to_have_value("eu-west-1")
