"""Reserved capacity: bad input, the fleet check, launches drawing on a reservation against the
real simulator, the backend holding the GPUs, and the invoice line."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from unittest.mock import patch

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.audit.models import AuditEntry
from portal.billing import services as billing
from portal.billing.models import UsageInterval
from portal.billing.periods import Month
from portal.instances import sync, tasks
from portal.instances.models import State
from portal.lib.errors import ApplicationError
from portal.provisioning import CapacityError, get_backend
from portal.reservations import services
from portal.reservations import tasks as operation_tasks
from portal.reservations.models import Reservation
from tests.instances.conftest import machines_of, set_quota
from tests.operations.conftest import store_fleet

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


@pytest.fixture
def reserve(team, catalog, staff):
    def make(gpus=16, start=None, end=None, organization=None, price="1.50", **kwargs):
        start = start or timezone.now() - DAY
        return services.reservation_create(
            organization=organization or team.organization,
            region=kwargs.pop("region", catalog.us_east),
            gpu_model=kwargs.pop("gpu_model", catalog.h100),
            gpus=gpus,
            start=start,
            end=end or start + 30 * DAY,
            price_per_gpu_hour=price,
            by=staff,
        )

    return make


# --- Bad input ------------------------------------------------------------------------------


def test_end_before_start_is_refused_and_nothing_saved(reserve, fleet):
    start = timezone.now() + DAY
    for end in (start - DAY, start):
        with pytest.raises(ApplicationError, match="end must be after the start"):
            reserve(start=start, end=end)
    assert not Reservation.objects.exists()
    assert not AuditEntry.objects.filter(action="reservation.created").exists()


def test_overlapping_reservations_beyond_the_fleet_are_refused(reserve, fleet, outsider):
    """The fleet has 64 H100 in us-east-1."""
    start = timezone.now() + DAY
    reserve(gpus=40, start=start, end=start + 10 * DAY)
    reserve(gpus=24, start=start + 5 * DAY, end=start + 20 * DAY)  # 64 at the peak: fits
    with pytest.raises(ApplicationError) as refused:
        reserve(
            gpus=1,
            start=start + 9 * DAY,
            end=start + 11 * DAY,
            organization=outsider.organization,
        )
    assert refused.value.code == "exceeds_fleet"
    assert "at most 0 can be reserved" in refused.value.message
    assert Reservation.objects.count() == 2
    # After the first ends, 40 are free again.
    reserve(gpus=40, start=start + 10 * DAY, end=start + 12 * DAY)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"gpus": 0}, "gpus"),
        ({"gpus": -3}, "gpus"),
        ({"price": "-1"}, "price_per_gpu_hour"),
        ({"price": "abc"}, "price_per_gpu_hour"),
        ({"price": "1.123456"}, "price_per_gpu_hour"),
        ({"gpus": 65}, "gpus"),
    ],
)
def test_bad_numbers_are_refused(reserve, fleet, change, field):
    with pytest.raises(ApplicationError) as refused:
        reserve(**change)
    assert refused.value.field == field
    assert not Reservation.objects.exists()


def test_not_offered_there_is_refused(reserve, fleet, catalog):
    with pytest.raises(ApplicationError, match="not offered"):
        reserve(gpu_model=catalog.l40s, region=catalog.us_east)


def test_without_a_capacity_report_nothing_is_reserved(reserve):
    with pytest.raises(ApplicationError, match="not known yet"):
        reserve()
    assert not Reservation.objects.exists()


def test_the_admin_form_shows_the_refusal(client, staff, fleet, team, catalog):
    client.force_login(staff)
    start = timezone.now() + DAY
    form = {
        "organization": team.organization.pk,
        "region": catalog.us_east.pk,
        "gpu_model": catalog.h100.pk,
        "gpus": 65,
        "start": start.strftime("%Y-%m-%dT%H:%M"),
        "end": (start + DAY).strftime("%Y-%m-%dT%H:%M"),
        "price_per_gpu_hour": "1.50",
    }
    response = client.post(reverse("admin:reservations_reservation_create"), form)
    assert response.status_code == 200
    assert "at most 64 can be reserved" in response.content.decode()
    form["end"] = (start - DAY).strftime("%Y-%m-%dT%H:%M")
    form["gpus"] = 8
    response = client.post(reverse("admin:reservations_reservation_create"), form)
    assert "The end must be after the start" in response.content.decode()
    assert not Reservation.objects.exists()
    form["end"] = (start + DAY).strftime("%Y-%m-%dT%H:%M")
    assert client.post(reverse("admin:reservations_reservation_create"), form).status_code == 302
    assert Reservation.objects.get().gpus == 8


# --- Launches within a reservation ------------------------------------------------------------


def test_a_reservation_adds_to_the_quota_and_skips_the_capacity_check(
    reserve, team, launch, catalog
):
    store_fleet(us_h100_free=0)  # the backend says nothing is free
    reserve(gpus=16)
    set_quota(team.organization, catalog.us_east, catalog.h100, on_demand=0)
    first = launch("a", instance_type="gpu_8x_h100")
    second = launch("b", instance_type="gpu_8x_h100")
    assert first.gpus + second.gpus == 16
    with pytest.raises(ApplicationError) as refused:  # beyond the reservation: capacity, quota
        launch("c", instance_type="gpu_1x_h100")
    assert refused.value.code in ("no_capacity", "quota_exceeded")
    # Preemptible launches never draw on it.
    with pytest.raises(ApplicationError):
        launch("d", preemptible=True)


def test_outside_the_period_the_reservation_does_not_count(reserve, team, launch):
    store_fleet(us_h100_free=0)
    reserve(gpus=16, start=timezone.now() + DAY)
    with pytest.raises(ApplicationError) as refused:
        launch("a", instance_type="gpu_8x_h100")
    assert refused.value.code == "no_capacity"


@pytest.mark.slow
def test_against_the_simulator_reserved_gpus_are_held_and_never_refused(
    simulator, eager, reserve, team, outsider, launch, catalog, django_capture_on_commit_callbacks
):
    """64 H100 in us-east-1; 16 reserved for the team; another customer takes all it can."""
    backend = get_backend()
    store_fleet()
    with django_capture_on_commit_callbacks(execute=True):
        reservation = reserve(gpus=16)
    reservation.refresh_from_db()
    assert reservation.backend_held_at is not None
    (held,) = simulator.control.state()["reservations"]
    assert (held["id"], held["gpus"], held["account"]) == (reservation.backend_id, 16, "acme")

    # The backend now reports 48 free to everyone; the rival fills them and is refused beyond.
    free = {(c.region, c.instance_type): c.free_gpus for c in backend.capacity()}
    assert free[("us-east-1", "gpu_8x_h100")] == 48
    for n in range(6):
        backend.create(
            request_id=f"rival-{n}",
            instance_type="gpu_8x_h100",
            region="us-east-1",
            image="ubuntu",
            ssh_keys=[],
            name=f"rival-{n}",
            preemptible=False,
            account="rival",
        )
    with pytest.raises(CapacityError):
        backend.create(
            request_id="rival-6",
            instance_type="gpu_8x_h100",
            region="us-east-1",
            image="ubuntu",
            ssh_keys=[],
            name="rival-6",
            preemptible=False,
            account="rival",
        )
    sync.capacity_refresh()  # the portal's snapshot: nothing free

    # The team's launches within the reservation go through, in the portal and the backend.
    set_quota(team.organization, catalog.us_east, catalog.h100, on_demand=0)
    for name in ("res-a", "res-b"):
        with django_capture_on_commit_callbacks(execute=True):
            instance = launch(name, instance_type="gpu_8x_h100")
        with django_capture_on_commit_callbacks(execute=True):
            tasks.instance_provision.apply(args=[instance.pk])
        instance.refresh_from_db()
        assert instance.state == State.RUNNING, instance.state_reason
    assert sum(m["gpu_count"] for m in machines_of(simulator)) == 64

    # Released (cancelled): the backend stops holding what is not in use.
    with django_capture_on_commit_callbacks(execute=True):
        services.reservation_cancel(reservation=reservation, by=reservation.created_by)
    assert simulator.control.state()["reservations"] == []


def test_the_hold_task_is_idempotent(simulator, eager, reserve, django_capture_on_commit_callbacks):
    store_fleet()
    with django_capture_on_commit_callbacks(execute=True):
        reservation = reserve(gpus=8)
    assert operation_tasks.reservation_hold.apply(args=[reservation.pk]).get() is True
    assert len(simulator.control.state()["reservations"]) == 1


# --- Billing ----------------------------------------------------------------------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_invoice_bills_the_reservation_once_whether_used_or_not(
    team, catalog, staff, make_instance, settings, client_for
):
    """8 H100 reserved March 10–20 at 1.50; an 8x instance runs 2 days inside and 1 outside."""
    settings.TAX_RATE = Decimal("0")
    store_fleet()
    with patch("django.utils.timezone.now", lambda: at("2026-03-01 00:00:00")):
        services.reservation_create(
            organization=team.organization,
            region=catalog.us_east,
            gpu_model=catalog.h100,
            gpus=8,
            start=at("2026-03-10 00:00:00"),
            end=at("2026-03-20 00:00:00"),
            price_per_gpu_hour="1.50",
            by=staff,
        )
    instance = make_instance(State.TERMINATED, instance_type=catalog.h100_8x, gpus=8)
    for day in ("2026-03-12", "2026-03-13", "2026-03-25"):
        UsageInterval.objects.create(
            instance=instance,
            organization=team.organization,
            instance_type=catalog.h100_8x,
            region=catalog.us_east,
            gpus=8,
            kind="on_demand",
            start=at(f"{day} 00:00:00"),
            end=at(f"{day} 00:00:00") + DAY,
            unit_price=Decimal("19.92"),
        )
    with (
        patch("portal.billing.clock.now", lambda: at("2026-04-02 00:00:00")),
        patch("portal.billing.services.invoices.usage_sync_organization", lambda **kw: None),
    ):
        invoice = billing.invoice_issue(organization=team.organization, month=Month(2026, 3))
    lines = {line.kind: line for line in invoice.lines.all()}
    assert lines["on_demand"].amount == Decimal("1434.24")  # 72 h × 19.92, all usage rated
    assert lines["reserved"].amount == Decimal("2880.00")  # 8 GPUs × 240 h × 1.50
    assert lines["reserved"].gpu_seconds == 8 * 240 * 3600
    assert lines["covered"].amount == Decimal("-956.16")  # the 48 h inside, taken off again
    assert invoice.subtotal == Decimal("1434.24") + Decimal("2880.00") - Decimal("956.16")
    assert len(lines) == 3
    page = invoice.lines.filter(kind="reserved").get()
    assert page.get_kind_display() == "Reserved capacity"
    assert (page.gpus, page.price_per_gpu_hour) == (8, Decimal("1.50"))
    invoice_page = (
        client_for(team.owner.user).get(f"/o/acme/billing/invoices/{invoice.pk}/").content.decode()
    )
    # The reserved line names its GPUs and the price per GPU-hour, not only the hourly total.
    assert "8 NVIDIA H100 80GB GPUs at $1.50/GPU-hour" in invoice_page


def test_more_usage_than_reserved_is_covered_pro_rata(team, catalog, staff, make_instance):
    store_fleet()
    with patch("django.utils.timezone.now", lambda: at("2026-03-01 00:00:00")):
        services.reservation_create(
            organization=team.organization,
            region=catalog.us_east,
            gpu_model=catalog.h100,
            gpus=4,
            start=at("2026-03-10 00:00:00"),
            end=at("2026-03-11 00:00:00"),
            price_per_gpu_hour="1.00",
            by=staff,
        )
    instance = make_instance(State.TERMINATED, instance_type=catalog.h100_8x, gpus=8)
    UsageInterval.objects.create(
        instance=instance,
        organization=team.organization,
        instance_type=catalog.h100_8x,
        region=catalog.us_east,
        gpus=8,
        kind="on_demand",
        start=at("2026-03-10 00:00:00"),
        end=at("2026-03-11 00:00:00"),
        unit_price=Decimal("20.00"),
    )
    from portal.billing.reservations import reservation_lines

    reserved, covered = reservation_lines(
        organization_id=team.organization.pk,
        start=at("2026-03-01 00:00:00"),
        end=at("2026-04-01 00:00:00"),
        now=at("2026-04-02 00:00:00"),
    )
    assert reserved.amount == Decimal("96.00")  # 4 × 24 h × 1.00
    assert covered.amount == Decimal("-240.00")  # half of 480.00: 4 of the 8 GPUs


def test_the_month_forecast_includes_accepted_reservations(team, catalog, staff, client_for):
    from portal.billing.periods import Month
    from portal.billing.selectors import billing_overview

    store_fleet()
    with patch("django.utils.timezone.now", lambda: at("2026-03-01 00:00:00")):
        services.reservation_create(
            organization=team.organization,
            region=catalog.us_east,
            gpu_model=catalog.h100,
            gpus=8,
            start=at("2026-03-10 00:00:00"),
            end=at("2026-03-20 00:00:00"),
            price_per_gpu_hour="1.50",
            by=staff,
        )
    with patch("portal.billing.clock.now", lambda: at("2026-03-15 00:00:00")):
        overview = billing_overview(organization=team.organization, month=Month(2026, 3))
    assert overview.reserved == Decimal("2880.00")  # 8 GPUs × 240 h × 1.50, used or not
    assert overview.forecast == Decimal("2880.00")  # nothing else runs
