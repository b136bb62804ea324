"""A reclaim in the browser: staff make a reclaim order in the admin; the customer sees the
interruption time on the instance page, then "Interrupted" without a reload; the operator
overview shows the reclaim and the fill-rate chart. A real Celery worker and the simulator do
the work. Screenshots (1280 and 390 px wide) go to $SHOTS_DIR when it is set."""

import os
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from portal.instances import services, sync
from portal.instances.models import Instance, State
from portal.reclaims.models import OrderState, ReclaimOrder, ReclaimPolicy
from tests.e2e.test_instances import backend, slow_simulator, worker  # noqa: F401
from tests.factories import UserFactory
from tests.instances import conftest as instance_fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

catalog = instance_fixtures.catalog
quota = instance_fixtures.quota
ssh_key = instance_fixtures.ssh_key

NOTICE = 12


def shot(page, name: str) -> None:
    folder = os.environ.get("SHOTS_DIR")
    if not folder:
        return
    page.screenshot(path=str(Path(folder) / f"{name}-1280.png"), full_page=True)
    narrow = page.context.browser.new_context(
        viewport={"width": 390, "height": 844}, storage_state=page.context.storage_state()
    ).new_page()
    narrow.goto(page.url)
    narrow.wait_for_load_state()
    narrow.screenshot(path=str(Path(folder) / f"{name}-390.png"), full_page=True)
    narrow.context.close()


def test_staff_reclaim_the_customer_sees_the_time_then_interrupted(
    page,
    browser,
    browser_context_args,
    live_server,
    smtp_sink,
    login,
    team,
    catalog,
    quota,
    ssh_key,
    worker,  # noqa: F811
    settings,
):
    settings.RECLAIM_MIN_NOTICE_SECONDS = 5
    ReclaimPolicy.objects.update_or_create(pk=1, defaults={"notice_seconds": NOTICE})
    staff = UserFactory(email="ops@backfill.example", is_staff=True, is_superuser=True)
    sync.capacity_refresh()
    spot = services.instance_launch(
        membership=team.member,
        name="spot-train",
        instance_type=catalog.h100_1x.code,
        region=catalog.us_east.code,
        image=catalog.ubuntu.code,
        ssh_key_ids=[ssh_key.pk],
        preemptible=True,
        idempotency_key=None,
    )
    deadline = time.monotonic() + 30
    while Instance.objects.get(pk=spot.pk).state != State.RUNNING:
        assert time.monotonic() < deadline, "the instance did not come up"
        time.sleep(0.3)
    sync.capacity_refresh()  # a sample of the fleet with the instance sold

    # Staff: "return 1 H100 GPU in us-east-1" in the admin.
    admin = browser.new_context(**browser_context_args).new_page()
    login(admin, staff)
    admin.goto(f"{live_server.url}/admin/reclaims/reclaimorder/add/")
    expect(admin.get_by_role("heading", name="Reclaim GPUs")).to_be_visible()
    admin.select_option("select[name=region]", str(catalog.us_east.pk))
    admin.select_option("select[name=gpu_model]", str(catalog.h100.pk))
    admin.fill("input[name=gpus]", "0")
    admin.fill("input[name=deadline]", "14:00")
    admin.get_by_role("button", name="Reclaim GPUs").click()
    expect(admin.get_by_text("Ask for at least 1 GPU.")).to_be_visible()
    assert not ReclaimOrder.objects.exists()
    admin.fill("input[name=gpus]", "1")
    by = timezone.now() + timedelta(seconds=NOTICE + 3)
    admin.fill("input[name=deadline]", by.strftime("%Y-%m-%d %H:%M:%S"))
    admin.fill("input[name=reason]", "Evaluation run of the research team.")
    admin.get_by_role("button", name="Reclaim GPUs").click()
    form = admin.locator("#reclaimorder_form")
    expect(form).to_contain_text("Returns 1 of 1 NVIDIA H100 80GB GPUs in us-east-1")
    expect(form).to_contain_text("spot-train")  # the victim, in the inline
    expect(form).to_contain_text("0 of 1 instances ended")
    shot(admin, "reclaim-order")
    order = ReclaimOrder.objects.get()

    # The customer: the interruption time on the instance page, then "Interrupted".
    login(page, team.member.user)
    page.goto(f"{live_server.url}/o/acme/instances/{spot.pk}/")
    spot.refresh_from_db()
    notice = page.get_by_test_id("reclaim")
    expect(notice).to_contain_text(f"interruption at {spot.reclaim_at:%H:%M:%S} UTC")
    expect(page.get_by_test_id("timeline")).to_contain_text("Evaluation run of the research team.")
    shot(page, "reclaim-notice")
    mail = smtp_sink.wait_for(to=team.member.user.email, subject_contains="interrupted at")
    assert "spot-train" in mail.text
    page.evaluate("window.__stillTheSamePage = true")
    expect(page.get_by_test_id("state").first).to_have_text("Interrupted", timeout=60_000)
    assert page.evaluate("window.__stillTheSamePage === true")
    shot(page, "reclaim-interrupted")
    # The machine ended at the announced second, and the order is done, on time.
    spot.refresh_from_db()
    assert spot.terminated_at == spot.reclaim_at
    deadline = time.monotonic() + 10
    while ReclaimOrder.objects.get(pk=order.pk).state != OrderState.DONE:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    order.refresh_from_db()
    assert order.met is True

    # The operator's overview: the reclaim and the fill-rate chart.
    sync.capacity_refresh()
    admin.goto(f"{live_server.url}/admin/overview/")
    expect(admin.get_by_test_id("places").locator("a.current")).to_have_text(
        "us-east-1 · NVIDIA H100 80GB"
    )
    expect(admin.get_by_test_id("reclaims")).to_contain_text("1 orders")
    expect(admin.get_by_test_id("reclaims")).to_contain_text("1 met on time with full notice")
    expect(admin.get_by_test_id("chart-fill-rate")).to_be_visible()
    expect(admin.get_by_test_id("chart-fleet")).to_be_visible()
    expect(admin.get_by_test_id("chart-reclaims").locator("rect.c-met")).to_have_count(1)
    shot(admin, "reclaim-overview")
    assert re.search(r"instance_poll|reclaim_order_tell_backend", worker.log())
