"""Kombu's Redis transport, for channels that outlive their connection.

When Redis goes away, Celery 5.7's consumer collects the lost connection, which drops the
transport's client (`Transport.client = None`), and starts a new one. Channels of the old
connection can still be used after that:

- the consumer closes the old default channel; if the first pass left it open (it was waiting
  in BRPOP when Redis went), kombu's QoS puts the held messages back through the client it no
  longer has;
- a task that was running when Redis went finishes afterwards, and its acknowledgement (or
  rejection) goes to the old channel.

Both end in an AttributeError deep in kombu, which Celery only ignores for connection errors:
the worker logs "Unrecoverable error" and stops consuming. Here a channel whose transport is
gone takes that as the connection loss it is. Its unacknowledged messages stay in Redis'
unacked set, and the visibility timeout brings them back, as for any worker that lost its
connection; a message whose task already ran is then skipped (portal/runtime/worker.py,
LeasedTask).
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis

logger = logging.getLogger(__name__)


def _released(channel: Any) -> bool:
    transport = getattr(channel, "connection", None)
    return transport is None or getattr(transport, "client", None) is None


class Channel(kombu_redis.Channel):
    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        if _released(self):
            logger.warning(
                "broker connection lost before message %s was acknowledged: it comes back later",
                delivery_tag,
            )
            return
        super().basic_ack(delivery_tag, multiple=multiple)

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        if _released(self):
            logger.warning(
                "broker connection lost before message %s was rejected: it comes back later",
                delivery_tag,
            )
            return
        super().basic_reject(delivery_tag, requeue=requeue)

    def close(self) -> None:
        try:
            super().close()
        except AttributeError:
            if not _released(self):
                raise
            logger.warning(
                "broker connection already released: its unacked messages come back later"
            )


class Transport(kombu_redis.Transport):
    Channel = Channel
