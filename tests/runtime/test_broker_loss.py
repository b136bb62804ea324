"""A worker that loses Redis while it holds a message closes the broken connection and lives.

Celery 5.7's consumer collects the lost connection (dropping its transport) and then closes it;
when the first pass left the default channel open, kombu's Redis QoS tried to give the held
messages back through a client that is gone, and the worker exited. The outage test
(test_outages.py) met this now and then under load; here the state is made on purpose, on a
Redis of the test's own.
"""

import time

import pytest
from kombu import Connection, Consumer, Exchange, Queue
from kombu.common import ignore_errors

from portal.celery import app
from portal.runtime.worker import tolerate_lost_transport
from tests.runtime.servers import RedisServer

TASKS = Queue("tasks", Exchange("tasks"), routing_key="tasks")


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


def _holding_one_message(url: str) -> tuple[Connection, list]:
    """A connection whose default channel took one message and has not acknowledged it."""
    connection = Connection(url, transport_options={"visibility_timeout": 1})
    connection.connect()
    with connection.Producer() as producer:
        producer.publish(
            {"task": "held"}, exchange=TASKS.exchange, routing_key="tasks", declare=[TASKS]
        )
    received: list = []
    consumer = Consumer(
        connection.default_channel, [TASKS], callbacks=[lambda b, m: received.append(b)]
    )
    consumer.consume()
    connection.drain_events(timeout=5)
    assert received == [{"task": "held"}]
    return connection, received


def _collected_but_channel_left_open(connection: Connection) -> None:
    """What the consumer's collect() leaves when the channel's close was cut short."""
    connection._do_close_transport()


def test_kombu_alone_dies_closing_a_connection_whose_transport_is_gone(redis_server):
    connection, _ = _holding_one_message(redis_server.url())
    _collected_but_channel_left_open(connection)

    with pytest.raises(AttributeError):
        ignore_errors(connection, connection.close)


def test_the_portals_worker_closes_it_and_the_message_comes_back_for_the_next_worker(redis_server):
    connection, _ = _holding_one_message(redis_server.url())
    _collected_but_channel_left_open(connection)
    tolerate_lost_transport(connection)  # as the portal's worker Consumer does

    ignore_errors(connection, connection.close)  # does not raise

    time.sleep(1.5)  # past the visibility timeout
    with Connection(redis_server.url(), transport_options={"visibility_timeout": 1}) as again:
        again.default_channel.qos.restore_visible()
        received: list = []
        consumer = Consumer(
            again.default_channel, [TASKS], callbacks=[lambda b, m: received.append(b)]
        )
        consumer.consume()
        again.drain_events(timeout=5)
    assert received == [{"task": "held"}]


def test_the_worker_uses_the_consumer_that_survives_it():
    assert app.conf.worker_consumer == "portal.runtime.worker:Consumer"
