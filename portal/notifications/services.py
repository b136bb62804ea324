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
from typing import Any

from django.db import transaction

from portal.lib import metrics
from portal.notifications import tasks
from portal.notifications.models import Notification
from portal.notifications.registry import builder_for

logger = logging.getLogger(__name__)


def notify(kind: str, /, **params: Any) -> Notification:
    builder_for(kind)  # an unknown kind fails here, in the caller's tests, not in a worker
    notification = Notification.objects.create(kind=kind, params=params)
    pk = notification.pk
    _after_commit(lambda: _enqueue(pk))
    _after_commit(metrics.EMAILS_QUEUED.labels(kind=kind).inc)
    return notification


def _after_commit(callback: Callable[[], None]) -> None:
    transaction.on_commit(callback)


def _enqueue(notification_id: int) -> None:
    try:
        tasks.notification_send.delay(notification_id)
    except Exception:  # the broker is down: the sweep sends it once the broker is back
        logger.warning("could not enqueue notification %s; the sweep will send it", notification_id)
