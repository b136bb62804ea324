"""`notify()`: the one way Backfill sends an e-mail.

    from portal.notifications.services import notify

    notify("quota_request_decided", message_id=step.pk)

It writes an outbox row in the caller's transaction (so a rolled-back change mails nobody and a
committed one is never forgotten, whatever happens to the broker) and enqueues its sending once
the transaction commits. The web request never waits for SMTP: a slow or stopped mail server
delays the mail, not the page. Parameters are ids and short strings (JSON).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from portal.lib import metrics
from portal.lib.errors import ApplicationError
from portal.notifications import delivery, tasks
from portal.notifications.models import EmailPreference, Notification
from portal.notifications.registry import CATEGORIES, builder_for

logger = logging.getLogger(__name__)


def notify(kind: str, /, *, batch: str = "", wait: int = 0, **params: Any) -> Notification:
    """Queue one e-mail. `batch` (with a kind that has a summary builder): rows of the kind with
    the same key still unsent when the first goes out make one summary e-mail; `wait` seconds
    give the others time to arrive (several instances of one launch become running together)."""
    (notification,) = notify_many(kind, [params], batch=batch, wait=wait)
    return notification


def notify_many(
    kind: str, /, params: list[dict[str, Any]], *, batch: str = "", wait: int = 0
) -> list[Notification]:
    """`notify` of one e-mail per entry of `params`, of one kind and batch (a provisioning run's
    instances that became running together): one INSERT, and once committed one count of the
    batch for all of them."""
    builder_for(kind)  # an unknown kind fails here, in the caller's tests, not in a worker
    if not params:
        return []
    due = timezone.now() + timedelta(seconds=wait)
    notifications = Notification.objects.bulk_create(
        [
            Notification(kind=kind, params=each, batch_key=batch[:128], next_attempt_at=due)
            for each in params
        ]
    )
    pks = [notification.pk for notification in notifications]
    if batch and wait > 0:
        _after_commit(lambda: _enqueue_batched(pks, f"{kind}:{batch[:128]}", wait))
    else:
        _after_commit(lambda: _enqueue_each(pks))
    _after_commit(lambda: metrics.EMAILS_QUEUED.labels(kind=kind).inc(len(pks)))
    return notifications


def _after_commit(callback: Callable[[], None]) -> None:
    transaction.on_commit(callback)


def _enqueue(notification_id: int, countdown: float = 0) -> None:
    try:
        if countdown:
            tasks.notification_send.apply_async((notification_id,), countdown=countdown)
        else:
            tasks.notification_send.delay(notification_id)
    except Exception:  # the broker is down: the sweep sends it once the broker is back
        logger.warning("could not enqueue notification %s; the sweep will send it", notification_id)


def _sent_at_once() -> bool:
    """Whether an enqueued delivery runs at once (Celery's eager mode) rather than when due."""
    return bool(tasks.notification_send.app.conf.task_always_eager)


def _enqueue_each(notification_ids: list[int]) -> None:
    for notification_id in notification_ids:
        _enqueue(notification_id)


def _enqueue_batched(notification_ids: list[int], batch: str, wait: int) -> None:
    """Rows of a batch: their sending is enqueued for when they are due, and only for the
    first row of the batch within `wait` seconds (and each BATCH_MAX + 1-th after it): the
    first one's delivery claims the others as one summary e-mail, so theirs would find nothing
    to send. A row that no task takes (a failed summary gives its rows back) is sent by the
    sweep. Without the cache, every row is enqueued."""
    if _sent_at_once():  # no later delivery would take the others
        _enqueue_each(notification_ids)
        return
    key = f"notifications:batch-enqueued:{batch}"
    try:
        cache.add(key, 0, timeout=wait)
        last = cache.incr(key, len(notification_ids))
    except Exception:  # gone meanwhile, or no cache: enqueue these
        for notification_id in notification_ids:
            _enqueue(notification_id, countdown=wait)
        return
    first = last - len(notification_ids) + 1  # the batch's count of the first of these rows
    for count, notification_id in enumerate(notification_ids, start=first):
        if (count - 1) % (delivery.BATCH_MAX + 1) == 0:
            _enqueue(notification_id, countdown=wait)


def email_categories_muted(*, user_id: int) -> list[str]:
    preference = EmailPreference.objects.filter(user_id=user_id).first()
    return list(preference.muted) if preference else []


def email_preferences_set(*, user_id: int, wanted: list[str]) -> EmailPreference:
    """Send the categories in `wanted` by e-mail, mute the others (registry.CATEGORIES);
    security e-mail and kinds without a category are always sent."""
    unknown = set(wanted) - set(CATEGORIES)
    if unknown:
        raise ApplicationError(f"Unknown e-mail categories: {', '.join(sorted(unknown))}.")
    preference, _ = EmailPreference.objects.update_or_create(
        user_id=user_id,
        defaults={
            "muted": [category for category in CATEGORIES if category not in wanted],
            "updated_at": timezone.now(),
        },
    )
    return preference
