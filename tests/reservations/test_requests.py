"""Customers ask for reserved capacity, staff quote against the fleet, the customer accepts or
declines; the pages, roles and tenant isolation; the 7-day reminders."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from portal.audit.models import AuditEntry
from portal.lib.errors import ApplicationError
from portal.reservations import reminders, services
from portal.reservations.models import Reservation, ReservationRequest, ReservationRequestState

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_backend(monkeypatch):
    monkeypatch.setattr("portal.reservations.tasks.reservation_hold.delay", lambda pk: None)


@pytest.fixture
def ask(team, catalog):
    def make(gpus=16, months=3, by=None, start_date=None):
        return services.reservation_request_submit(
            membership=by or team.owner,
            region=catalog.us_east.code,
            gpu_model=catalog.h100.code,
            gpus=gpus,
            start_date=start_date or (timezone.now() + timedelta(days=10)).date(),
            months=months,
            note="Pre-training run.",
        )

    return make


def url(team, name, *args):
    return reverse(f"reservations:{name}", args=[team.organization.slug, *args])


def test_the_whole_way_from_request_to_reservation(
    team, staff, fleet, ask, client_for, django_capture_on_commit_callbacks
):
    request = ask()
    assert request.state == ReservationRequestState.SUBMITTED
    with django_capture_on_commit_callbacks(execute=True):
        services.reservation_request_quote(
            reservation_request=request, price_per_gpu_hour="1.85", by=staff
        )
    assert sorted(m.to[0] for m in mail.outbox) == sorted(
        [team.owner.user.email, team.admin.user.email]
    )
    quote = mail.outbox[0]
    assert "Our quote: $1.85/GPU-hour," in quote.body

    client = client_for(team.admin.user)
    page = client.get(url(team, "request_detail", request.pk)).content.decode()
    assert "Quote:" in page and "1.85" in page
    response = client.post(url(team, "request_answer", request.pk, "accept"))
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.state == ReservationRequestState.ACCEPTED
    reservation = request.reservation
    assert (reservation.gpus, reservation.price_per_gpu_hour) == (16, Decimal("1.8500"))
    assert reservation.start.date() == request.start_date
    assert (reservation.end - reservation.start).days in (89, 90, 91, 92)
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"reservation.requested", "reservation.quoted", "reservation.accepted"} <= actions
    listing = client.get(url(team, "list")).content.decode()
    assert f"R-{reservation.pk}" in listing


def test_declining_makes_no_reservation(team, staff, fleet, ask, client_for):
    request = ask()
    services.reservation_request_quote(
        reservation_request=request, price_per_gpu_hour="2", by=staff
    )
    client_for(team.owner.user).post(url(team, "request_answer", request.pk, "decline"))
    request.refresh_from_db()
    assert request.state == ReservationRequestState.DECLINED and not Reservation.objects.exists()
    with pytest.raises(ApplicationError, match="only a quoted request"):
        services.reservation_request_answer(
            membership=team.owner, reservation_request=request, accept=True
        )


def test_a_quote_beyond_the_free_fleet_is_refused(team, staff, fleet, ask):
    request = ask(gpus=65)
    with pytest.raises(ApplicationError) as refused:
        services.reservation_request_quote(
            reservation_request=request, price_per_gpu_hour="1", by=staff
        )
    assert refused.value.code == "exceeds_fleet"
    request.refresh_from_db()
    assert request.state == ReservationRequestState.SUBMITTED and request.quote_price is None


def test_acceptance_is_checked_against_the_fleet_again(team, staff, fleet, ask, outsider):
    request = ask(gpus=40)
    services.reservation_request_quote(
        reservation_request=request, price_per_gpu_hour="1", by=staff
    )
    start, end = services.request_period(request.start_date, request.months)
    services.reservation_create(
        organization=outsider.organization,
        region=request.region,
        gpu_model=request.gpu_model,
        gpus=30,
        start=start,
        end=end,
        price_per_gpu_hour="1",
        by=staff,
    )
    with pytest.raises(ApplicationError, match="at most 34 can be reserved"):
        services.reservation_request_answer(
            membership=team.owner, reservation_request=request, accept=True
        )
    request.refresh_from_db()
    assert request.state == ReservationRequestState.QUOTED
    assert Reservation.objects.count() == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("gpus", 0), ("months", 0), ("months", 37), ("start_date", "yesterday")],
)
def test_bad_requests_are_refused(team, catalog, field, value):
    data = {
        "membership": team.owner,
        "region": catalog.us_east.code,
        "gpu_model": catalog.h100.code,
        "gpus": 8,
        "start_date": (timezone.now() + timedelta(days=3)).date(),
        "months": 2,
    }
    data[field] = (timezone.now() - timedelta(days=1)).date() if value == "yesterday" else value
    with pytest.raises(ApplicationError) as refused:
        services.reservation_request_submit(**data)
    assert refused.value.field == field
    assert not ReservationRequest.objects.exists()


def test_the_page_form(team, catalog, client_for):
    client = client_for(team.owner.user)
    form = {
        "region": catalog.us_east.code,
        "gpu_model": catalog.h100.code,
        "gpus": 8,
        "start_date": (timezone.now() + timedelta(days=5)).date().isoformat(),
        "months": 2,
    }
    response = client.post(url(team, "list"), form)
    assert response.status_code == 302
    item = ReservationRequest.objects.get()
    assert response["Location"] == url(team, "request_detail", item.pk)
    bad = client.post(url(team, "list"), {**form, "gpus": 0})
    assert bad.status_code == 400 and ReservationRequest.objects.count() == 1


@pytest.mark.parametrize("role", ["member", "billing", "viewer"])
def test_only_owners_and_admins_ask_and_answer(team, staff, fleet, ask, client_for, role):
    """Members and viewers see the page (as they see quotas); the billing role does not."""
    request = ask()
    services.reservation_request_quote(
        reservation_request=request, price_per_gpu_hour="1", by=staff
    )
    client = client_for(team.by_role(role).user)
    page = client.get(url(team, "list"))
    if role == "billing":
        assert page.status_code == 403
    else:
        assert page.status_code == 200 and "Ask for a quote" not in page.content.decode()
    assert client.post(url(team, "list"), {"gpus": 1}).status_code == 403
    assert client.post(url(team, "request_answer", request.pk, "accept")).status_code == 403
    request.refresh_from_db()
    assert request.state == ReservationRequestState.QUOTED


def test_outsiders_get_404(team, staff, fleet, ask, outsider, client_for):
    request = ask()
    client = client_for(outsider.user)
    assert client.get(url(team, "list")).status_code == 404
    assert client.get(url(team, "request_detail", request.pk)).status_code == 404
    own = reverse("reservations:request_detail", args=[outsider.organization.slug, request.pk])
    assert client.get(own).status_code == 404
    answer = reverse(
        "reservations:request_answer", args=[outsider.organization.slug, request.pk, "accept"]
    )
    assert client.post(answer).status_code == 404


def test_wrong_method_and_unknown_answer(team, staff, fleet, ask, client_for):
    request = ask()
    client = client_for(team.owner.user)
    assert client.get(url(team, "request_answer", request.pk, "accept")).status_code == 405
    assert client.post(url(team, "request_answer", request.pk, "maybe")).status_code == 404


def test_reminders_seven_days_ahead_once_each(team, staff, fleet, catalog):
    now = timezone.now()
    starting = services.reservation_create(
        organization=team.organization,
        region=catalog.us_east,
        gpu_model=catalog.h100,
        gpus=8,
        start=now + timedelta(days=6),
        end=now + timedelta(days=60),
        price_per_gpu_hour="1",
        by=staff,
    )
    ending = services.reservation_create(
        organization=team.organization,
        region=catalog.us_east,
        gpu_model=catalog.h100,
        gpus=8,
        start=now - timedelta(days=30),
        end=now + timedelta(days=5),
        price_per_gpu_hour="1",
        by=staff,
    )
    services.reservation_create(  # far away: nothing yet
        organization=team.organization,
        region=catalog.us_east,
        gpu_model=catalog.h100,
        gpus=8,
        start=now + timedelta(days=20),
        end=now + timedelta(days=40),
        price_per_gpu_hour="1",
        by=staff,
    )
    assert reminders.reservation_reminders_send(now=now) == 2
    subjects = sorted(m.subject for m in mail.outbox)
    assert any(f"R-{starting.pk} starts" in s for s in subjects)
    assert any(f"R-{ending.pk} ends" in s for s in subjects)
    assert reminders.reservation_reminders_send(now=now) == 0  # once per reservation
    assert len(mail.outbox) == 2 * 2  # owner and admin each


def test_staff_quote_in_admin_shows_the_reservable_gpus(team, staff, fleet, ask, client):
    request = ask(gpus=16)
    client.force_login(staff)
    quote_url = reverse("admin:reservations_reservationrequest_quote", args=[request.pk])
    page = client.get(quote_url).content.decode()
    assert "Reservable over that period: 64 GPUs" in page
    assert client.post(quote_url, {"price_per_gpu_hour": "-1"}).status_code == 200
    request.refresh_from_db()
    assert request.state == ReservationRequestState.SUBMITTED
    assert client.post(quote_url, {"price_per_gpu_hour": "1.75"}).status_code == 302
    request.refresh_from_db()
    assert (request.state, request.quote_price) == (
        ReservationRequestState.QUOTED,
        Decimal("1.7500"),
    )
    listing = client.get(reverse("admin:reservations_reservationrequest_changelist"))
    assert listing.status_code == 200
