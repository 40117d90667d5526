"""What the RabbitMQ broker does its own way (the shared contract is in test_broker_contract.py):
priority bands, publisher confirms that refuse, connection-bound deliveries, the delivery limit."""

import time
import uuid

import amqp
import pytest

from taskqueue.brokers import Outgoing, create_broker
from taskqueue.brokers import amqp as amqp_broker
from taskqueue.brokers.amqp import AmqpBroker
from taskqueue.brokers.amqptopology import DELAY_RUNGS, delay_routing_key
from taskqueue.brokers.amqpwire import PublishRefused, parse_url
from taskqueue.models import DeadLetter, OutboxMessage
from taskqueue.worker import batch as batching
from taskqueue.worker.execute import ExecutionContext
from tests.helpers import delete_amqp_topology, wait_until

pytestmark = pytest.mark.amqp_only  # its own broker, on the RabbitMQ run's server


@pytest.fixture
def broker(amqp_url, transactional_db):
    instance = create_broker(amqp_url, f"amqp-{uuid.uuid4().hex[:8]}")
    yield instance
    delete_amqp_topology(instance)
    instance.close()


def _raw_channel(broker: AmqpBroker) -> tuple[amqp.Connection, amqp.Channel]:
    params = broker.params
    connection = amqp.Connection(host=params.host, userid=params.userid, password=params.password,
                                 virtual_host=params.virtual_host)
    connection.connect()
    return connection, connection.channel()


def test_priorities_go_by_band_highest_first_and_in_order_within_one(broker):
    broker.publish([Outgoing("q", "p0", b"x"), Outgoing("q", "p9", b"x", priority=9),
                    Outgoing("q", "p5", b"x", priority=5), Outgoing("q", "p2", b"x", priority=2),
                    Outgoing("q", "p7", b"x", priority=7)])
    assert [d.key for d in broker.reserve("c", ["q"], count=5, timeout=0)] == ["p9", "p7", "p5", "p0", "p2"]


def test_a_waiting_consumer_takes_a_priority_band_another_process_just_made(broker, amqp_url, monkeypatch):
    """The band's notice reaches the consumer at once: with no periodic look for new bands, the
    priority-8 message is taken all the same."""
    monkeypatch.setattr(amqp_broker, "BAND_LOOK_EVERY", 3600.0)
    assert broker.reserve("c", ["q"], timeout=0.1) == []  # consuming: only the plain band exists
    other = create_broker(amqp_url, broker.prefix)  # another process's broker: a topology of its own
    try:
        other.publish([Outgoing("q", "urgent", b"x", priority=8)])
        taken: list = []
        deadline = time.monotonic() + 10
        while not taken and time.monotonic() < deadline:
            taken = broker.reserve("c", ["q"], timeout=0.5)
        assert [d.key for d in taken] == ["urgent"]
        broker.ack(taken)
    finally:
        other.close()


def test_a_confirmed_outbox_publish_deletes_its_rows(broker):
    OutboxMessage.objects.create(key="sent", queue="q", body="{}", priority=0)
    OutboxMessage.objects.create(key="other", queue="q", body="{}", priority=0)
    broker.publish([Outgoing("q", "sent", b"body")], remember=60)
    assert list(OutboxMessage.objects.values_list("key", flat=True)) == ["other"]


def test_a_message_rabbitmq_cannot_route_fails_the_publish(broker):
    broker.publish([Outgoing("q", "first", b"x")])
    connection, channel = _raw_channel(broker)
    try:
        channel.queue_delete(f"{broker.prefix}.q")  # gone behind the broker's back
    finally:
        connection.close()
    with pytest.raises(PublishRefused, match="no queue"):
        broker.publish([Outgoing("q", "lost?", b"x")])
    broker.publish([Outgoing("q", "again", b"x")])  # declared anew on a fresh connection
    assert [d.key for d in broker.reserve("c", ["q"], timeout=0)] == ["again"]


def test_a_consumer_declares_its_queues_anew_after_an_error(broker):
    assert broker.reserve("c", ["q"], timeout=0) == []  # declared
    connection, channel = _raw_channel(broker)
    try:
        channel.queue_delete(f"{broker.prefix}.q")  # gone behind the broker's back, as on a node that lost its data
    finally:
        connection.close()
    with pytest.raises(amqp.exceptions.NotFound):
        broker.reserve("c", ["q"], timeout=0)
    assert broker.reserve("c", ["q"], timeout=0) == []  # a new connection, the queue declared again
    broker.publish([Outgoing("q", "k", b"x")])
    assert [d.key for d in broker.reserve("c", ["q"], timeout=0)] == ["k"]


def test_a_closed_consumer_connection_gives_its_messages_back_counted(broker):
    broker.publish([Outgoing("q", "k", b"body")])
    [taken] = broker.reserve("doomed", ["q"], timeout=0)
    assert taken.redeliveries == 0
    broker._consumers["doomed"].connection.sock.close()  # as when its process is killed
    [again] = broker.reserve("other", ["q"], timeout=5)
    assert (again.key, again.body, again.redeliveries) == ("k", b"body", 1)


def test_over_the_delivery_limit_a_message_ends_in_the_dead_letters_with_the_reason(amqp_url, transactional_db,
                                                                                     settings):
    settings.TASKQUEUE_MAX_REDELIVERIES = 0
    broker = AmqpBroker(amqp_url, f"amqp-{uuid.uuid4().hex[:8]}")  # RabbitMQ's limit: 0 + 5
    try:
        broker.publish([Outgoing("q", "poison", b"a body whose decoding kills every worker")])
        for _ in range(broker.topology.delivery_limit + 1):
            assert [d.key for d in broker.reserve("c", ["q"], timeout=10)] == ["poison"]
            broker.leases(requeue=["c"])  # handed back, counted, as when its worker dies
        # RabbitMQ moves it to the dead queue, never drops it; consumers look there now and then
        [delivery] = wait_until(lambda: broker.reserve("c", ["q"], timeout=0.1), timeout=10,
                                message="the message back from the dead queue")
        assert delivery.key == "poison" and delivery.queue == "q"
        batching.process([delivery], ExecutionContext(broker=broker, hostname="amqp-test", consumer_id="c"))
        letter = DeadLetter.objects.get(message_id="poison")
        assert letter.queue == "q" and "never finished; not decoded again" in letter.reason
        assert broker.reserve("other", ["q"], timeout=0.5) == []  # acked: it does not come back
    finally:
        delete_amqp_topology(broker)
        broker.close()


def test_a_countdown_that_falls_due_with_no_queue_to_take_it_is_sent_to_its_queue_again(broker):
    """RabbitMQ routes a due countdown to the dead queue when no queue is bound to take it (here its
    queue was deleted; a node starting again after a crash can expire delayed messages before its
    bindings are back). That is no poison message: a consumer sends it to its queue again, uncounted."""
    broker.publish([Outgoing("q", "due", b"body", eta=time.time() + 0.2)])
    connection, channel = _raw_channel(broker)
    try:
        channel.queue_delete(f"{broker.prefix}.q")  # gone behind the broker's back while it waits
        wait_until(lambda: channel.queue_declare(broker.topology.dead, passive=True).message_count == 1,
                   timeout=10, message="the due message in the dead queue")
    finally:
        connection.close()
    [delivery] = wait_until(lambda: broker.reserve("c", ["q"], timeout=0.5), timeout=10,
                            message="the due message back in its queue")
    assert (delivery.key, delivery.body, delivery.queue, delivery.redeliveries) == ("due", b"body", "q", 0)
    broker.ack([delivery])
    assert not DeadLetter.objects.exists()


def test_a_countdown_climbs_down_the_rungs_it_needs():
    assert delay_routing_key(0.01).split(".") == ["0"] * (DELAY_RUNGS - 1) + ["1"]  # one unit: the bottom rung
    assert delay_routing_key(0.15).endswith(".0.1.1")  # three units of 50 ms
    assert len(delay_routing_key(10 ** 12).split(".")) == DELAY_RUNGS  # capped at the top rung


def test_amqp_urls():
    params = parse_url("amqp://user:p%40ss@rabbit.example:5673/my%2Fvhost")
    assert (params.host, params.userid, params.password, params.virtual_host, params.ssl) == (
        "rabbit.example:5673", "user", "p@ss", "my/vhost", False)
    assert parse_url("pyamqp://guest@localhost//").virtual_host == "/"
    assert parse_url("amqps://h").host == "h:5671" and parse_url("amqps://h").ssl
