"""A worker that loses Redis while it holds a message lives on (portal/runtime/broker.py).

Celery 5.7's consumer collects the lost connection (dropping its transport's client) and then
closes it; when the first pass left the default channel open, kombu's Redis QoS tried to give the
held messages back through a client that is gone, and the worker exited. A task that finished
after the loss acknowledged its message on that same channel, with the same end. The outage test
(test_outages.py) met both now and then under load; here the state is made on purpose, on a
Redis of the test's own.
"""

import logging
import time

import pytest
from kombu import Connection, Consumer, Exchange, Queue
from kombu.common import ignore_errors

from portal.celery import app
from portal.runtime.broker import Transport
from tests.runtime.servers import RedisServer

TASKS = Queue("tasks", Exchange("tasks"), routing_key="tasks")


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


def _holding_one_message(url: str, transport=None) -> tuple[Connection, list]:
    """A connection whose default channel took one message and has not acknowledged it."""
    connection = Connection(url, transport=transport, transport_options={"visibility_timeout": 1})
    connection.connect()
    with connection.Producer() as producer:
        producer.publish(
            {"task": "held"}, exchange=TASKS.exchange, routing_key="tasks", declare=[TASKS]
        )
    received: list = []
    consumer = Consumer(connection.default_channel, [TASKS], callbacks=[_keep(received)])
    consumer.consume()
    connection.drain_events(timeout=5)
    assert [body for body, _message in received] == [{"task": "held"}]
    return connection, received


def _keep(received: list):
    return lambda body, message: received.append((body, message))


def _comes_back(url: str) -> list:
    """What a fresh worker receives once the visibility timeout has passed."""
    time.sleep(1.5)
    with Connection(url, transport_options={"visibility_timeout": 1}) as again:
        again.default_channel.qos.restore_visible()
        received: list = []
        consumer = Consumer(again.default_channel, [TASKS], callbacks=[_keep(received)])
        consumer.consume()
        again.drain_events(timeout=5)
    return [body for body, _message in received]


def _collected_but_channel_left_open(connection: Connection) -> None:
    """What the consumer's collect() leaves when the channel's close was cut short."""
    connection._do_close_transport()


def test_kombu_alone_dies_closing_a_connection_whose_transport_is_gone(redis_server):
    connection, _ = _holding_one_message(redis_server.url())
    _collected_but_channel_left_open(connection)

    with pytest.raises(AttributeError):
        ignore_errors(connection, connection.close)


def test_kombu_alone_dies_acknowledging_on_a_connection_whose_transport_is_gone(redis_server):
    connection, received = _holding_one_message(redis_server.url())
    _collected_but_channel_left_open(connection)
    with pytest.raises(AttributeError):
        ignore_errors(connection, connection.close)
    _body, message = received[0]

    with pytest.raises(AttributeError):
        message.ack_log_error(logging.getLogger("test"), connection.connection_errors)


def test_the_portals_worker_closes_it_and_the_message_comes_back_for_the_next_worker(redis_server):
    connection, _ = _holding_one_message(redis_server.url(), transport=Transport)
    _collected_but_channel_left_open(connection)

    ignore_errors(connection, connection.close)  # does not raise

    assert _comes_back(redis_server.url()) == [{"task": "held"}]


def test_a_task_finished_after_the_loss_is_acknowledged_without_killing_the_worker(redis_server):
    connection, received = _holding_one_message(redis_server.url(), transport=Transport)
    _collected_but_channel_left_open(connection)
    ignore_errors(connection, connection.close)
    _body, message = received[0]

    message.ack_log_error(logging.getLogger("test"), connection.connection_errors)  # no raise
    message.channel.basic_reject(message.delivery_tag)  # nor a rejection

    assert _comes_back(redis_server.url()) == [{"task": "held"}]


def test_the_worker_and_the_web_use_the_transport_that_survives_it():
    assert app.conf.broker_transport == "portal.runtime.broker:Transport"
    with app.connection_for_write() as connection:
        assert connection.transport_cls is Transport or isinstance(connection.transport, Transport)
