"""Reminders of reserved capacity: "starting in 7 days", "ending in 7 days", and quotes that
are about to lapse or have lapsed."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.audit.services import audit_record
from portal.notifications.services import notify
from portal.reservations.models import Reservation, ReservationRequest, ReservationRequestState


def reservation_reminders_send(*, now: datetime | None = None) -> int:
    """E-mail "starting in 7 days" and "ending in 7 days", each once per reservation.

    A conditional UPDATE claims each reminder, so two runs never send it twice.
    """
    now = now or timezone.now()
    horizon = now + timedelta(days=7)
    sent = 0
    for field, moment, what in (
        ("starting_notified_at", "start", "starting"),
        ("ending_notified_at", "end", "ending"),
    ):
        due = Reservation.objects.in_force().filter(
            **{f"{field}__isnull": True, f"{moment}__gt": now, f"{moment}__lte": horizon}
        )
        for pk in due.values_list("pk", flat=True):
            claimed = Reservation.objects.filter(pk=pk, **{f"{field}__isnull": True}).update(
                **{field: now}
            )
            if claimed:
                notify(f"reservation_{what}", reservation_id=pk)
                sent += 1
    return sent


def reservation_quotes_expire(*, now: datetime | None = None) -> tuple[int, int]:
    """A reminder to the customer once a quote has less than RESERVATION_QUOTE_REMIND_HOURS
    left, then, past its date, the request becomes "quote expired" (audited, e-mailed).

    Each step is claimed by a conditional UPDATE, so two runs never mail anyone twice. Returns
    (reminded, expired).
    """
    now = now or timezone.now()
    quoted = ReservationRequest.objects.filter(state=ReservationRequestState.QUOTED)
    reminded = 0
    soon = now + timedelta(hours=settings.RESERVATION_QUOTE_REMIND_HOURS)
    due = quoted.filter(
        quote_reminded_at__isnull=True, quote_expires_at__gt=now, quote_expires_at__lte=soon
    )
    for pk in due.values_list("pk", flat=True):
        if quoted.filter(pk=pk, quote_reminded_at__isnull=True).update(quote_reminded_at=now):
            notify("reservation_quote_expiring", reservation_request_id=pk)
            reminded += 1
    expired = 0
    for pk in quoted.filter(quote_expires_at__lte=now).values_list("pk", flat=True):
        with transaction.atomic():
            if not quoted.filter(pk=pk).update(state=ReservationRequestState.EXPIRED):
                continue
            reservation_request = ReservationRequest.objects.select_related("organization").get(
                pk=pk
            )
            audit_record(
                action="reservation.quote_expired",
                organization=reservation_request.organization,
                actor_label="reservation_quotes_expire",
                target=reservation_request,
                detail={"valid_until": reservation_request.quote_expires_at},
            )
            notify("reservation_quote_expired", reservation_request_id=pk)
            expired += 1
    return reminded, expired
