"""Sending an outbox row: claim it, build its messages, send each recipient once, record."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from portal.notifications import mail
from portal.notifications.models import EmailPreference, Notification
from portal.notifications.registry import (
    Email,
    builder_for,
    category_of,
    secret_params,
    summary_for,
)
from portal.web.sql import ReadBuiltOnce

logger = logging.getLogger(__name__)

CLAIM_SECONDS = 120  # a worker that dies mid-send gives the row back after this long
MAX_ATTEMPTS = 200  # at the retry cap (60 s) over three hours of outage, then staff look
BATCH_MAX = 200  # the most rows one summary e-mail takes besides its own


def retry_delay(attempts: int) -> timedelta:
    """After the n-th failed attempt: 5 s, 10 s, 20 s… capped at NOTIFICATION_RETRY_MAX seconds,
    so that mail held by an SMTP outage leaves within that long of the server's return."""
    cap = getattr(settings, "NOTIFICATION_RETRY_MAX", 60)
    return timedelta(seconds=min(5 * 2 ** max(0, attempts - 1), cap))


def notifications_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Unsent rows whose next attempt is due and that no worker holds."""
    now = now or timezone.now()
    return list(
        Notification.objects.filter(
            sent_at__isnull=True, failed_at__isnull=True, next_attempt_at__lte=now
        )
        .exclude(claimed_until__gt=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def seconds_until_due(notification_id: int) -> float:
    """How long a row still waits before its first attempt (0 when due or gone)."""
    due = (
        Notification.objects.filter(pk=notification_id, sent_at__isnull=True)
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    return max(0.0, (due - timezone.now()).total_seconds()) if due else 0.0


def _claim(notification_id: int, now: datetime) -> bool:
    """The conditional UPDATE is the lock: exactly one worker gets the row until the lease ends."""
    return bool(
        Notification.objects.filter(pk=notification_id, sent_at__isnull=True, failed_at=None)
        .exclude(claimed_until__gt=now)
        .update(claimed_until=now + timedelta(seconds=CLAIM_SECONDS), attempts=F("attempts") + 1)
    )


# Read for every e-mail sent: built once.
_NOTIFICATION = ReadBuiltOnce(lambda pk: Notification.objects.filter(pk=pk), pk=int)


def notification_deliver(notification_id: int) -> str:
    """Send what the row stands for. Returns "sent", "retry" (next attempt scheduled) or
    "skipped" (sent already, given up, or another worker holds it)."""
    now = timezone.now()
    if not _claim(notification_id, now):
        return "skipped"
    notification = _NOTIFICATION.get(pk=notification_id)
    sent = list(notification.sent_to)
    batch = _claim_batch(notification, now)
    try:
        if batch:
            summary = summary_for(notification.kind)
            assert summary is not None
            emails = summary([notification.params, *(row.params for row in batch)])
        else:
            emails = builder_for(notification.kind)(**notification.params)
        muted = muted_addresses(
            category_of(notification.kind), {address for email in emails for address in email.to}
        )
        to_send: list[tuple[Email, str]] = []
        for email in emails:
            for address in sorted(set(email.to)):
                if address in sent or address in {a for _, a in to_send}:
                    continue
                if address.lower() not in muted:
                    to_send.append((email, address))
        for n, (email, address) in enumerate(to_send, start=1):
            mail.render(email, address).send()
            sent.append(address)
            if n < len(to_send):  # the last is recorded with the row's sending, below
                Notification.objects.filter(pk=notification_id).update(sent_to=sent)
    except Exception as exc:  # SMTP down, a template error: keep the row, try again later
        if batch:  # the others go back to waiting, to be sent with this one's retry or alone
            Notification.objects.filter(pk__in=[row.pk for row in batch]).update(claimed_until=None)
        return _failed(notification, sent, exc)
    if batch:
        Notification.objects.filter(pk__in=[row.pk for row in batch]).update(
            sent_at=timezone.now(), claimed_until=None, sent_to=sent, batched_into=notification
        )
    secrets = secret_params(notification.kind)
    Notification.objects.filter(pk=notification_id).update(
        sent_at=timezone.now(),
        sent_to=sent,
        claimed_until=None,
        last_error="",
        # A link's token or a rendered reset mail is not kept once it is sent.
        params={k: v for k, v in notification.params.items() if k not in secrets},
    )
    return "sent"


def _claim_batch(notification: Notification, now: datetime) -> list[Notification]:
    """The other unsent rows of the same kind and batch key, claimed for this delivery (the
    claim is the same conditional UPDATE as one row's), oldest first."""
    if not notification.batch_key or summary_for(notification.kind) is None:
        return []
    others = (
        Notification.objects.filter(
            kind=notification.kind,
            batch_key=notification.batch_key,
            sent_at__isnull=True,
            failed_at__isnull=True,
        )
        .exclude(pk=notification.pk)
        .exclude(claimed_until__gt=now)
    )
    ids = list(others.values_list("pk", flat=True)[:BATCH_MAX])
    if not ids:
        return []
    Notification.objects.filter(pk__in=ids).exclude(claimed_until__gt=now).update(
        claimed_until=now + timedelta(seconds=CLAIM_SECONDS)
    )
    claimed = Notification.objects.filter(
        pk__in=ids, claimed_until=now + timedelta(seconds=CLAIM_SECONDS)
    )
    return list(claimed.order_by("created_at", "pk"))


def muted_addresses(category: str, addresses: set[str]) -> set[str]:
    """Of `addresses`, those whose person turned `category` off (lower case)."""
    if not category or not addresses:
        return set()
    return {
        email.lower()
        for email in EmailPreference.objects.filter(
            user__email__in={address.lower() for address in addresses},
            muted__contains=[category],
        ).values_list("user__email", flat=True)
    }


def _failed(notification: Notification, sent: list[str], exc: Exception) -> str:
    attempts = notification.attempts
    error = f"{type(exc).__name__}: {exc}"[:300]
    given_up = attempts >= MAX_ATTEMPTS
    logger.warning(
        "notification %s (%s) attempt %s failed: %s%s",
        notification.pk,
        notification.kind,
        attempts,
        error,
        "; giving up" if given_up else "",
    )
    Notification.objects.filter(pk=notification.pk).update(
        sent_to=sent,
        claimed_until=None,
        last_error=error,
        next_attempt_at=timezone.now() + retry_delay(attempts),
        failed_at=timezone.now() if given_up else None,
    )
    return "failed" if given_up else "retry"
