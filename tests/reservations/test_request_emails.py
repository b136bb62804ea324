"""The e-mails around a reservation request: staff hear of a new request and of an acceptance,
the customer gets a confirmation, and a quote lapses on its date after a reminder."""

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from portal.audit.models import AuditEntry
from portal.lib.errors import ApplicationError
from portal.reservations import reminders, services
from portal.reservations.models import ReservationRequestState

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_backend(monkeypatch):
    monkeypatch.setattr("portal.reservations.tasks.reservation_hold.delay", lambda pk: None)


@pytest.fixture
def ask(team, catalog, django_capture_on_commit_callbacks):
    def make(start_in_days=10):
        with django_capture_on_commit_callbacks(execute=True):
            return services.reservation_request_submit(
                membership=team.owner,
                region=catalog.us_east.code,
                gpu_model=catalog.h100.code,
                gpus=16,
                start_date=(timezone.now() + timedelta(days=start_in_days)).date(),
                months=3,
                note="Pre-training run.",
            )

    return make


@pytest.fixture
def quoted(ask, staff, fleet):
    request = ask()
    mail.outbox.clear()
    return services.reservation_request_quote(
        reservation_request=request, price_per_gpu_hour="1.85", by=staff
    )


def mails(to: str) -> list:
    return [m for m in mail.outbox if to in m.to]


def test_staff_hear_of_a_new_request_with_a_link_to_quote_it(ask):
    request = ask()

    (message,) = mail.outbox
    assert message.to == [settings.OPERATOR_EMAIL]
    assert message.subject == (
        f"[Backfill] New reservation request #{request.pk} from Acme AI: "
        "16 NVIDIA H100 80GB GPUs in us-east-1"
    )
    assert "Pre-training run." in message.body
    quote_url = reverse("admin:reservations_reservationrequest_quote", args=[request.pk])
    assert f"http://testserver{quote_url}" in message.body


def test_accepting_confirms_to_the_customer_and_tells_staff(
    team, quoted, client_for, django_capture_on_commit_callbacks
):
    client = client_for(team.admin.user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse(
                "reservations:request_answer", args=[team.organization.slug, quoted.pk, "accept"]
            )
        )

    quoted.refresh_from_db()
    reservation = quoted.reservation
    confirmations = mails(team.owner.user.email)
    assert [m.subject for m in confirmations] == [
        f"[Backfill] Reservation R-{reservation.pk} confirmed: "
        "16 NVIDIA H100 80GB GPUs in us-east-1"
    ]
    body = confirmations[0].body
    assert f"{team.admin.user.display_name} accepted our quote for Acme AI" in body
    assert "$1.85/GPU-hour" in body and "billed monthly" in body
    assert mails(team.admin.user.email)  # owners and admins
    assert not mails(team.member.user.email)
    (staff_mail,) = mails(settings.OPERATOR_EMAIL)
    assert staff_mail.subject == (
        f"[Backfill] Acme AI accepted the quote for reservation request #{quoted.pk}"
    )
    assert f"Reservation R-{reservation.pk} now holds them" in staff_mail.body


def test_a_quote_holds_seven_days_by_default_and_says_so(team, quoted, client_for):
    assert quoted.quote_expires_at - quoted.quoted_at == timedelta(days=7)
    page = client_for(team.owner.user).get(
        reverse("reservations:request_detail", args=[team.organization.slug, quoted.pk])
    )
    assert "The quote holds until" in page.content.decode()


def test_staff_may_set_the_date_but_never_past_the_start(ask, staff, fleet):
    request = ask(start_in_days=10)
    in_three_days = (timezone.now() + timedelta(days=3)).date()

    services.reservation_request_quote(
        reservation_request=request, price_per_gpu_hour="2", by=staff, valid_until=in_three_days
    )
    request.refresh_from_db()
    assert request.quote_expires_at == datetime.combine(
        in_three_days + timedelta(days=1), datetime.min.time(), tzinfo=UTC
    )

    services.reservation_request_quote(
        reservation_request=request,
        price_per_gpu_hour="2",
        by=staff,
        valid_until=in_three_days + timedelta(days=30),
    )
    request.refresh_from_db()
    assert request.quote_expires_at.date() == request.start_date


def test_a_date_in_the_past_is_refused_and_changes_nothing(ask, staff, fleet):
    request = ask()
    with pytest.raises(ApplicationError, match="today or later"):
        services.reservation_request_quote(
            reservation_request=request,
            price_per_gpu_hour="2",
            by=staff,
            valid_until=(timezone.now() - timedelta(days=1)).date(),
        )
    request.refresh_from_db()
    assert request.state == ReservationRequestState.SUBMITTED and request.quote_price is None


def test_a_reminder_goes_out_once_before_the_quote_lapses(team, quoted):
    in_six_days = timezone.now() + timedelta(days=6)

    assert reminders.reservation_quotes_expire(now=timezone.now()) == (0, 0)
    assert reminders.reservation_quotes_expire(now=in_six_days) == (1, 0)
    assert reminders.reservation_quotes_expire(now=in_six_days) == (0, 0)

    (reminder,) = mails(team.owner.user.email)
    assert reminder.subject.startswith(
        f"[Backfill] The quote for reservation request #{quoted.pk} expires "
    )
    assert "Accept it before then to reserve the GPUs" in reminder.body


def test_a_lapsed_quote_expires_is_audited_mailed_and_cannot_be_accepted(
    team, quoted, django_capture_on_commit_callbacks
):
    later = timezone.now() + timedelta(days=8)

    with django_capture_on_commit_callbacks(execute=True):
        assert reminders.reservation_quotes_expire(now=later) == (0, 1)
    assert reminders.reservation_quotes_expire(now=later) == (0, 0)

    quoted.refresh_from_db()
    assert quoted.state == ReservationRequestState.EXPIRED
    entry = AuditEntry.objects.get(action="reservation.quote_expired")
    assert entry.organization == team.organization
    (expired,) = mails(team.owner.user.email)
    assert expired.subject == (
        f"[Backfill] The quote for reservation request #{quoted.pk} has expired"
    )
    assert "Nothing is reserved and nothing is billed" in expired.body
    with pytest.raises(ApplicationError, match="only a quoted request"):
        services.reservation_request_answer(
            membership=team.owner, reservation_request=quoted, accept=True
        )


def test_accepting_after_the_date_but_before_the_sweep_is_refused(team, quoted):
    quoted.quote_expires_at = timezone.now() - timedelta(minutes=1)
    quoted.save(update_fields=["quote_expires_at"])

    with pytest.raises(ApplicationError, match="This quote expired on"):
        services.reservation_request_answer(
            membership=team.owner, reservation_request=quoted, accept=True
        )
    quoted.refresh_from_db()
    assert quoted.state == ReservationRequestState.QUOTED and quoted.reservation is None
