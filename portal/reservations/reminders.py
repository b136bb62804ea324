"""Reminders of reserved capacity: "starting in 7 days" and "ending in 7 days"."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from portal.notifications.services import notify
from portal.reservations.models import Reservation


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
