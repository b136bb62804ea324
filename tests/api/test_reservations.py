"""/reservations/ and /reservation-requests/: ask, read the operator's quote, accept (the
reservation is made) or decline, with the reservations page's rules."""

from datetime import datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from portal.reservations import services
from portal.reservations.models import Reservation, ReservationRequest
from portal.reservations.reminders import reservation_quotes_expire
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_backend(monkeypatch):
    monkeypatch.setattr("portal.reservations.tasks.reservation_hold.delay", lambda pk: None)


def _ask(start_in_days: int = 10, **overrides) -> dict:
    return {
        "region": "us-east-1",
        "gpu_model": "h100",
        "gpus": 16,
        "start_date": (timezone.now() + timedelta(days=start_in_days)).date().isoformat(),
        "months": 3,
        "note": "Pre-training run.",
        **overrides,
    }


def test_ask_quote_accept(team, api_as, catalog, fleet, staff):
    api = api_as(team.admin)

    asked = api.post("/reservation-requests/", _ask(), headers={"Idempotency-Key": "res-1"})
    assert asked.status_code == 201, asked.content
    body = asked.json()
    assert body["state"] == "submitted" and body["quote_price"] is None
    assert body["start"].endswith("T00:00:00Z") and body["created_by"] == team.admin.user.email
    replay = api.post("/reservation-requests/", _ask(), headers={"Idempotency-Key": "res-1"})
    assert replay.content == asked.content and ReservationRequest.objects.count() == 1

    services.reservation_request_quote(
        reservation_request=ReservationRequest.objects.get(pk=body["id"]),
        price_per_gpu_hour="1.85",
        by=staff,
        note="Ready on the day.",
    )
    quoted = api.get(f"/reservation-requests/{body['id']}/").json()
    assert quoted["state"] == "quoted" and quoted["quote_price"] == "1.8500"
    assert quoted["quote_note"] == "Ready on the day."
    assert quoted["quote_total"] is not None and float(quoted["quote_total"]) > 0

    accepted = api.post(f"/reservation-requests/{body['id']}/accept/")
    assert accepted.status_code == 200, accepted.content
    reservation_id = accepted.json()["reservation_id"]
    reservation = Reservation.objects.get(pk=reservation_id)
    assert reservation.organization == team.organization and reservation.gpus == 16
    shown = api.get(f"/reservations/{reservation_id}/").json()
    assert shown["status"] == "upcoming" and shown["price_per_gpu_hour"] == "1.8500"
    assert api.get("/reservations/").json()["count"] == 1
    # Answered once only.
    assert_error(api.post(f"/reservation-requests/{body['id']}/decline/"), 409, "invalid_state")


def test_decline_a_quote(team, api_as, catalog, fleet, staff):
    api = api_as(team.owner)
    asked = api.post("/reservation-requests/", _ask()).json()
    services.reservation_request_quote(
        reservation_request=ReservationRequest.objects.get(pk=asked["id"]),
        price_per_gpu_hour="2.00",
        by=staff,
    )

    declined = api.post(f"/reservation-requests/{asked['id']}/decline/")

    assert declined.json()["state"] == "declined"
    assert not Reservation.objects.exists()
    listed = api.get("/reservation-requests/", {"state": "declined"}).json()
    assert [r["id"] for r in listed["results"]] == [asked["id"]]


def test_accepting_before_a_quote_is_409(team, api_as, catalog, fleet):
    api = api_as(team.owner)
    asked = api.post("/reservation-requests/", _ask()).json()

    assert_error(api.post(f"/reservation-requests/{asked['id']}/accept/"), 409, "invalid_state")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"start_in_days": 0}, "start_date"),
        ({"months": 0}, "months"),
        ({"months": 1000}, "months"),
        ({"gpus": "16"}, "gpus"),
        ({"region": "mars-1"}, "region"),
        ({"start_date": 20260101}, "start_date"),
        ({"start_date": "9999-12-31"}, "start_date"),
        ({"price": "1.00"}, "price"),
    ],
)
def test_bad_requests_are_400_with_the_field(team, api_as, catalog, fleet, overrides, field):
    start = overrides.pop("start_in_days", 10)
    error = assert_error(
        api_as(team.owner).post("/reservation-requests/", _ask(start, **overrides)), 400
    )
    assert field in error["details"], error


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_and_viewers_read_but_do_not_ask(team, api_as, catalog, role):
    api = api_as(team.by_role(role))
    assert api.get("/reservations/").status_code == 200
    assert_error(api.post("/reservation-requests/", _ask()), 403, "forbidden")


def test_billing_members_see_nothing(team, api_as):
    assert_error(api_as(team.billing).get("/reservation-requests/"), 403, "forbidden")


def test_another_organizations_requests_are_404(team, outsider, api_as, catalog, fleet):
    theirs = services.reservation_request_submit(
        membership=outsider,
        region="us-east-1",
        gpu_model="h100",
        gpus=8,
        start_date=(timezone.now() + timedelta(days=5)).date(),
        months=1,
    )
    api = api_as(team.owner)

    assert_error(api.get(f"/reservation-requests/{theirs.pk}/"), 404)
    assert_error(api.post(f"/reservation-requests/{theirs.pk}/decline/"), 404)
    assert ReservationRequest.objects.get(pk=theirs.pk).state == "submitted"
    assert api.get("/reservation-requests/").json()["count"] == 0


def test_a_quote_shows_until_when_it_holds_and_cannot_be_accepted_after(
    team, api_as, catalog, fleet, staff
):
    api = api_as(team.admin)
    asked = api.post("/reservation-requests/", _ask(start_in_days=20)).json()
    valid_until = (timezone.now() + timedelta(days=2)).date()
    services.reservation_request_quote(
        reservation_request=ReservationRequest.objects.get(pk=asked["id"]),
        price_per_gpu_hour="1.85",
        by=staff,
        valid_until=valid_until,
    )
    quoted = api.get(f"/reservation-requests/{asked['id']}/").json()
    assert quoted["quote_expires_at"] == f"{valid_until + timedelta(days=1)}T00:00:00Z"

    lapsed = datetime.fromisoformat(quoted["quote_expires_at"]) + timedelta(minutes=1)
    with time_machine.travel(lapsed, tick=False):
        late = api.post(f"/reservation-requests/{asked['id']}/accept/")
        assert "expired" in assert_error(late, 409, "expired")["message"]
        assert not Reservation.objects.exists()
        reservation_quotes_expire()

    shown = api.get(f"/reservation-requests/{asked['id']}/").json()
    assert shown["state"] == "expired" and shown["reservation_id"] is None
    listed = api.get("/reservation-requests/", {"state": "expired"}).json()
    assert [r["id"] for r in listed["results"]] == [asked["id"]]
