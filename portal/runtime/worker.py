"""What keeps Celery on Redis both quick to recover and free of double runs.

The Redis broker has no connection-bound acknowledgements: a message a worker took stays in
Redis' `unacked` set, and any worker puts it back in the queue once it is older than the
visibility timeout. A long timeout (Celery's default is an hour) makes the work of a dead worker
wait that long; a short one makes a long task (or a task waiting for its countdown in a live
worker) run a second time while the first run goes on. So:

- the visibility timeout is short (CELERY_VISIBILITY_TIMEOUT, 30 s; unacknowledged messages
  are looked for every 5 s): the work of a worker that died comes back within about 35 s;
- `KeepMessagesStep`: every few seconds a live worker renews the timestamp of every message it
  holds (running, reserved, or waiting for its ETA), so none of them is ever given to another
  worker while it lives. The same step writes the worker's heartbeat for /readyz;
- `LeasedTask`: a task run holds a lease on its task id, renewed while it runs, and marks the
  id done at the end. Should a message come back while its first run still goes on (a worker
  stalled longer than the timeout), the second delivery sees the lease and waits for it
  instead of running alongside; it then finds the id done and stops, or takes over from a
  run that died. A retry (`self.retry()`, same id) is not "done" and runs.

The worker's processes must be prefork or threads (the default): the renewal runs in the main
process's event loop, which a solo pool blocks while a task runs.

portal/runtime/broker.py keeps the worker alive when Redis goes away while it holds messages.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

import redis
from celery import Task, bootsteps
from celery.exceptions import Retry

from portal.lib import heartbeat

logger = logging.getLogger(__name__)

LEASE_KEY = "backfill:task-lease:"
DONE_KEY = "backfill:task-done:"
DONE_TTL = 24 * 3600

_clients: dict[tuple[int, str], redis.Redis] = {}


def broker_client(url: str) -> redis.Redis:
    """One client per process and URL (a forked pool process makes its own)."""
    key = (os.getpid(), url)
    if key not in _clients:
        _clients[key] = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    return _clients[key]


def visibility_timeout(app: Any) -> float:
    return float((app.conf.broker_transport_options or {}).get("visibility_timeout", 3600))


def renew_every(app: Any) -> float:
    """Renew well within the timeout: a third of it, at most every 10 s."""
    return max(0.5, min(10.0, visibility_timeout(app) / 3))


def lease_seconds(app: Any) -> int:
    return max(3, int(visibility_timeout(app)))


class KeepMessagesStep(bootsteps.StartStopStep):
    """In the worker's main process: heartbeat, and renewal of the messages it holds."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref = None

    def start(self, c: Any) -> None:
        self.tick(c)
        self.tref = c.timer.call_repeatedly(renew_every(c.app), self.tick, (c,), priority=10)

    def stop(self, c: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def tick(self, c: Any) -> None:
        try:
            client = broker_client(c.app.conf.broker_url)
            now = time.time()
            hostname = getattr(c, "hostname", None) or socket.gethostname()
            heartbeat.beat(client, hostname, now)
            channel = c.task_consumer.channel if c.task_consumer else None
            qos = getattr(channel, "qos", None)
            tags = list(getattr(qos, "_delivered", {}) or {})
            if tags:
                # XX: only messages still unacknowledged; an acknowledged one stays gone.
                assert qos is not None
                client.zadd(qos.unacked_index_key, dict.fromkeys(tags, now), xx=True)
        except Exception:  # a broker hiccup: the next tick tries again
            logger.warning("worker heartbeat failed", exc_info=True)


class _Lease:
    def __init__(self, client: redis.Redis, task_id: str, seconds: int):
        self.client = client
        self.key = LEASE_KEY + task_id
        self.done_key = DONE_KEY + task_id
        self.seconds = seconds
        self.token = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def done(self) -> bool:
        return bool(self.client.exists(self.done_key))

    def acquire(self) -> bool:
        if not self.client.set(self.key, self.token, nx=True, ex=self.seconds):
            return False
        self._thread = threading.Thread(target=self._renew, daemon=True, name="task-lease")
        self._thread.start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                if self.client.get(self.key) == self.token.encode():
                    self.client.expire(self.key, self.seconds)
            except Exception:
                logger.warning("could not renew the lease %s", self.key, exc_info=True)

    def release(self, *, done: bool) -> None:
        self._stop.set()
        try:
            pipe = self.client.pipeline()
            if done:
                pipe.set(self.done_key, "1", ex=DONE_TTL)
            pipe.delete(self.key)
            pipe.execute()
        except Exception:
            logger.warning("could not release the lease %s", self.key, exc_info=True)


class LeasedTask(Task):
    """The base of every task of the app (portal.celery): one run of a task id at a time."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        if request.is_eager or request.called_directly or not request.id:
            return super().__call__(*args, **kwargs)
        lease = _Lease(broker_client(self.app.conf.broker_url), request.id, lease_seconds(self.app))
        try:
            if lease.done():
                logger.info("task %s already ran: this delivery is a duplicate", request.id)
                return None
            acquired = lease.acquire()
        except redis.RedisError:
            logger.warning("task lease unavailable (broker down?): running without it")
            return super().__call__(*args, **kwargs)
        if not acquired:
            # Another worker runs this very message now: look again when its lease would end.
            logger.warning("task %s is running elsewhere: deferred", request.id)
            self.signature_from_request(countdown=lease.seconds).apply_async()
            return None
        finished = False
        try:
            result = super().__call__(*args, **kwargs)
            finished = True
            return result
        except Retry:
            raise  # the retry (same id) must run
        except Exception:
            finished = True  # a failed run is over too: Celery acknowledges it
            raise
        finally:
            lease.release(done=finished)
