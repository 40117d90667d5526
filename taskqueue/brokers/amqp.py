"""The RabbitMQ broker (`amqp://`): messages in quorum queues, the rest in the project's database.

RabbitMQ holds every message: a queue `<prefix>.<queue>` per queue and priority band (`~4`, `~7`
for priorities 4-6 and 7-9, made by the first message of such a priority: RabbitMQ 3.x quorum
queues know no priorities), and for countdown/eta a ladder of delay queues, one per power of two
of DELAY_UNIT, each with its own fixed TTL (so what expires first is always at its head) that
dead-letters to the next rung and finally, through the `<prefix>.due` headers exchange, into the
message's own queue. Nothing waits in a queue that
has no way out: a message that finds no queue at the end goes to `<prefix>.dead`, as do messages
over the queue's delivery limit, and workers take those into the dead letters with the reason.

What RabbitMQ cannot hold (revoked task ids, lock_key mutexes, consumer leases for those locks,
what each consumer holds for the operator's pages) is kept in the database broker's tables. A
delivery belongs to the connection that received it: a consumer that dies loses its connection,
and RabbitMQ hands its messages out again (counted in the quorum queue's `x-delivery-count`), so
leases need no renewal here.

Connections: one per thread for publishing (publisher confirms: `publish` returns once RabbitMQ has
every message), one per consumer for reserving: a standing basic.consume per queue band whose
prefetch follows the batch the worker asks for, and is one while idle (see `_stream`). A one-off
reserve (a purge) uses basic.get instead.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import amqp
from amqp import spec
from django.utils import timezone

from ..models import BrokerConsumer, CancelledTask, OutboxMessage
from .base import Broker, Delivery, Holdings, Leases, Outgoing
from .database import DatabaseBroker

DELAY_UNIT = 0.05  # seconds: a countdown is rounded up to this
DELAY_RUNGS = 32  # 2**32 units of 50 ms: about 6.8 years
BANDS = ((7, "~7"), (4, "~4"), (0, ""))  # priority from, queue name suffix; highest first
HEADER_QUEUE = "tq-queue"  # the queue a delayed message goes to when due (no "x-": a headers exchange ignores those)
HEADER_COUNT = "tq-redeliveries"  # redeliveries counted before the message was sent again
DEAD_LOOK_EVERY = 1.0  # seconds between a consumer's looks at the dead queue
BAND_LOOK_EVERY = 1.0  # seconds between a consumer's looks for a priority band first used meanwhile
WAIT_SLICE = 0.05
FLOW_GRACE = 0.01  # seconds a consumer in a flow waits for the pushes its last acks made room for
MAX_PREFETCH = 64  # seconds an idle reserve holds its consumer's lock at a time (acks go between)
CONFIRM_TIMEOUT = 10.0


class PublishRefused(amqp.exceptions.ConnectionError):
    """RabbitMQ did not take a message (nack, or no queue to route it to): the send fails."""


@dataclass
class _Params:
    host: str
    userid: str
    password: str
    virtual_host: str
    ssl: bool
    connect_timeout: float = 5.0


def parse_url(url: str) -> _Params:
    """`amqp://user:password@host:port/vhost` (Celery's `pyamqp://` too; `amqps://` for TLS); the
    vhost is URL-quoted (`%2F` is "/", as is an empty path)."""
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    query = parse_qs(parts.query)
    return _Params(host=f"{parts.hostname or '127.0.0.1'}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}",
                   userid=unquote(parts.username or "guest"), password=unquote(parts.password or "guest"),
                   virtual_host=vhost, ssl=parts.scheme == "amqps",
                   connect_timeout=float(query.get("connect_timeout", ["5"])[0]))


def _connect(params: _Params) -> amqp.Connection:
    # heartbeat=0: a prefork child runs a task without reading its socket, and a missed heartbeat
    # would make RabbitMQ close the connection and hand the running task out again. A dead peer
    # is found by TCP keepalive (py-amqp's default socket settings) or when its socket closes.
    connection = amqp.Connection(host=params.host, userid=params.userid, password=params.password,
                                 virtual_host=params.virtual_host, ssl=params.ssl, heartbeat=0,
                                 connect_timeout=params.connect_timeout)
    connection.connect()
    return connection


class Topology:
    """Names, and declaring what a channel is about to use (once per process and name)."""

    def __init__(self, prefix: str, delivery_limit: int):
        self.prefix = prefix
        self.delivery_limit = delivery_limit
        self.due = f"{prefix}.due"
        self.dead = f"{prefix}.dead"
        self._declared: set[str] = set()
        self._lock = threading.Lock()

    def band(self, queue: str, priority: int) -> str:
        for lowest, suffix in BANDS:
            if priority >= lowest:
                return f"{self.prefix}.{queue}{suffix}"
        return f"{self.prefix}.{queue}"

    def bands(self, queue: str) -> list[str]:
        return [f"{self.prefix}.{queue}{suffix}" for _, suffix in BANDS]

    def known(self, name: str) -> bool:
        """Declared (or found) by this process."""
        return name in self._declared

    def found(self, name: str) -> None:
        with self._lock:
            self._declared.add(name)

    def queue_of(self, band: str) -> str:
        name = band[len(self.prefix) + 1:]
        return name.rsplit("~", 1)[0] if name[-2:] in ("~7", "~4") else name

    def rung(self, n: int) -> str:
        return f"{self.prefix}.delay.{n}"

    def _once(self, name: str, declare) -> None:
        if name in self._declared:
            return
        declare()
        with self._lock:
            self._declared.add(name)

    def forget(self) -> None:
        """After a reconnect to a broker that may have lost them (a new node, a reset)."""
        with self._lock:
            self._declared.clear()

    def declare_dead(self, channel: amqp.Channel) -> None:
        def declare():
            channel.exchange_declare(self.dead, "fanout", durable=True, auto_delete=False)
            channel.queue_declare(self.dead, durable=True, auto_delete=False,
                                  arguments={"x-queue-type": "quorum"})
            channel.queue_bind(self.dead, self.dead)
            channel.exchange_declare(self.due, "headers", durable=True, auto_delete=False,
                                     arguments={"alternate-exchange": self.dead})
        self._once(self.dead, declare)

    def declare_band(self, channel: amqp.Channel, band: str) -> None:
        self.declare_dead(channel)

        def declare():
            channel.queue_declare(band, durable=True, auto_delete=False, arguments={
                "x-queue-type": "quorum", "x-delivery-limit": self.delivery_limit,
                "x-dead-letter-exchange": self.dead, "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish"})
            channel.queue_bind(band, self.due, arguments={"x-match": "all", HEADER_QUEUE: band})
        self._once(band, declare)

    def declare_ladder(self, channel: amqp.Channel) -> None:
        """The delay rungs, bottom first (each passes messages down to the one below): rung n holds
        a message 2**n units."""
        self.declare_dead(channel)

        def declare():
            for n in range(DELAY_RUNGS):
                below = self.rung(n - 1) if n else self.due
                channel.exchange_declare(self.rung(n), "topic", durable=True, auto_delete=False)
                channel.queue_declare(self.rung(n), durable=True, auto_delete=False, arguments={
                    "x-queue-type": "quorum", "x-message-ttl": int(2 ** n * DELAY_UNIT * 1000),
                    "x-dead-letter-exchange": below, "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish"})
                channel.queue_bind(self.rung(n), self.rung(n), routing_key=_bit_pattern(n, "1"))
                channel.exchange_bind(below, self.rung(n), routing_key=_bit_pattern(n, "0"))
        self._once("ladder", declare)


def _bit_pattern(n: int, bit: str) -> str:
    """The topic pattern that matches routing keys whose bit `n` is `bit` (one word per bit, top first)."""
    return ".".join(bit if i == DELAY_RUNGS - 1 - n else "*" for i in range(DELAY_RUNGS))


def delay_routing_key(seconds: float) -> str:
    units = min(max(1, math.ceil(seconds / DELAY_UNIT)), 2 ** DELAY_RUNGS - 1)
    return ".".join(format(units, f"0{DELAY_RUNGS}b"))


class _Publisher:
    """One thread's publishing connection, with publisher confirms."""

    def __init__(self, params: _Params):
        self.connection = _connect(params)
        self.channel = self.connection.channel()
        self.channel.confirm_select()
        self.sent = 0
        self.confirmed = 0
        self.refused: list[str] = []
        self.channel.events["basic_ack"].add(self._acked)
        self.channel.events["basic_nack"].add(self._nacked)
        self.channel.events["basic_return"].add(self._returned)

    def _acked(self, delivery_tag: int, multiple: bool) -> None:
        self.confirmed = max(self.confirmed, delivery_tag)

    def _nacked(self, delivery_tag: int, multiple: bool) -> None:
        self.refused.append(f"RabbitMQ refused message {delivery_tag}")
        self.confirmed = max(self.confirmed, delivery_tag)

    def _returned(self, exc: Exception, exchange: str, routing_key: str, message: amqp.Message) -> None:
        self.refused.append(f"no queue for {routing_key!r}")

    def send(self, message: amqp.Message, exchange: str, routing_key: str) -> None:
        self.channel.basic_publish(message, exchange=exchange, routing_key=routing_key, mandatory=True)
        self.sent += 1

    def wait_for_confirms(self) -> None:
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while self.confirmed < self.sent:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"RabbitMQ confirmed {self.confirmed} of {self.sent} messages in time")
            self.channel.wait([spec.Basic.Ack, spec.Basic.Nack], timeout=left)
        if self.refused:
            refused, self.refused = self.refused, []
            raise PublishRefused("; ".join(refused))

    def close(self) -> None:
        _close(self.connection)


@dataclass
class _Held:
    band: str
    message: amqp.Message


@dataclass
class _Consumer:
    """One consumer's connection: what it holds (key -> deliveries), what RabbitMQ pushed that
    `reserve` has not handed out yet, and its standing basic.consume per band."""

    connection: amqp.Connection
    channel: amqp.Channel
    lock: threading.RLock = field(default_factory=threading.RLock)
    held: dict[str, list[_Held]] = field(default_factory=dict)
    pushed: list[tuple[str, amqp.Message]] = field(default_factory=list)  # (band, message)
    standing: dict[str, str] = field(default_factory=dict)  # band -> consumer tag
    prefetch: int = 0  # of the standing consumers (each band's)
    # bands that may have a next message on its way: consumers just made, or a message acked
    stirred: set[str] = field(default_factory=set)
    next_dead_look: float = 0.0
    next_band_look: float = 0.0
    recorded: list[list[str]] = field(default_factory=list)  # the holding last written to the database


class AmqpBroker(Broker):
    """Messages in RabbitMQ quorum queues; revocations, locks and consumer leases in the database."""

    reads_by_key = False
    takes_back_on_disconnect = True
    longest_delay = DELAY_UNIT * (2 ** DELAY_RUNGS - 1)

    def __init__(self, url: str, prefix: str = "taskqueue", priority_aging: float = 60.0,
                 alias: str = "default", max_redeliveries: int | None = None):
        from ..conf import get_settings

        if max_redeliveries is None:
            max_redeliveries = get_settings().MAX_REDELIVERIES
        self.url = url
        self.prefix = prefix
        self.params = parse_url(url)
        # RabbitMQ's own limit only catches what the worker's (WorkerLostError, then dead letter
        # unread) did not: a message that breaks the consumer before it is counted.
        self.topology = Topology(prefix, delivery_limit=max_redeliveries + 5)
        self.max_redeliveries = max_redeliveries
        self.state = DatabaseBroker(alias, prefix)
        self._local = threading.local()
        self._consumers: dict[str, _Consumer] = {}
        self._consumers_lock = threading.Lock()

    # -- publishing ----------------------------------------------------------------------------

    def _publisher(self) -> _Publisher:
        publisher = getattr(self._local, "publisher", None)
        if publisher is None:
            publisher = self._local.publisher = _Publisher(self.params)
        return publisher

    def publish(self, messages: Sequence[Outgoing], *, remember: float | None = None) -> None:
        try:
            self._send(self._publisher(), messages, redeliveries={})
        except Exception:
            self._drop_publisher()
            raise
        if remember is not None:
            # the outbox: RabbitMQ has the messages, so their rows need no relay
            OutboxMessage.objects.filter(key__in=[m.key for m in messages]).delete()

    def _send(self, publisher: _Publisher, messages: Iterable[Outgoing], redeliveries: dict[str, int],
              bands: dict[str, str] | None = None) -> None:
        now = time.time()
        channel = publisher.channel
        for m in messages:
            band = (bands or {}).get(m.key) or self.topology.band(m.queue, m.priority)
            self.topology.declare_band(channel, band)
            headers: dict[str, Any] = {HEADER_QUEUE: band}
            if redeliveries.get(m.key):
                headers[HEADER_COUNT] = redeliveries[m.key]
            message = amqp.Message(m.body, message_id=m.key, delivery_mode=2, application_headers=headers)
            if m.eta is not None and m.eta > now:
                self.topology.declare_ladder(channel)
                publisher.send(message, self.topology.rung(DELAY_RUNGS - 1), delay_routing_key(m.eta - now))
            else:
                publisher.send(message, "", band)
        publisher.wait_for_confirms()

    def _drop_publisher(self) -> None:
        publisher = getattr(self._local, "publisher", None)
        self._local.publisher = None
        if publisher is not None:
            publisher.close()
        self.topology.forget()

    # -- consuming -----------------------------------------------------------------------------

    def _consumer(self, consumer_id: str) -> _Consumer:
        consumer = self._consumers.get(consumer_id)
        if consumer is None:
            connection = _connect(self.params)
            channel = connection.channel()
            channel.basic_qos(0, 1, False)  # per consumer (quorum queues know no global QoS)
            consumer = _Consumer(connection, channel)
            with self._consumers_lock:
                self._consumers[consumer_id] = consumer
        return consumer

    def _drop_consumer(self, consumer_id: str) -> None:
        with self._consumers_lock:
            consumer = self._consumers.pop(consumer_id, None)
        if consumer is not None:
            _close(consumer.connection)  # RabbitMQ hands out again what it still held

    def reserve(self, consumer_id: str, queues: list[str], *, count: int = 1,
                timeout: float = 1.0) -> list[Delivery]:
        consumer = self._consumer(consumer_id)
        try:
            with consumer.lock:
                if time.monotonic() >= consumer.next_band_look:  # a priority band someone started
                    consumer.next_band_look = time.monotonic() + BAND_LOOK_EVERY
                    self._look_for_bands(consumer, queues)
                bands = [band for queue in queues for band in self.topology.bands(queue)
                         if band == self.topology.band(queue, 0) or self.topology.known(band)]
                for band in bands:
                    self.topology.declare_band(consumer.channel, band)
                taken = []
                if time.monotonic() >= consumer.next_dead_look:  # now and then, not on every reserve
                    consumer.next_dead_look = time.monotonic() + DEAD_LOOK_EVERY
                    taken = self._get(consumer, [self.topology.dead], count)
                if consumer.standing or timeout > 0:
                    taken += self._stream(consumer_id, consumer, bands, count - len(taken), timeout)
                else:  # a one-off reserve (a purge, a tool): no consumer left standing
                    taken += self._get(consumer, bands, count - len(taken))
                deliveries = [self._delivery(consumer, consumer_id, band, message) for band, message in taken]
            deliveries = self._drop_cancelled(consumer_id, deliveries)
            with consumer.lock:
                self._record_holding(consumer_id, consumer)
        except Exception:
            self._drop_consumer(consumer_id)
            self.topology.forget()  # the next connection may be to a node that lost them (as on publish)
            raise
        return deliveries

    def _look_for_bands(self, consumer: _Consumer, queues: list[str]) -> None:
        """The priority bands of these queues that exist: a band is made by the first publish of
        its priority (so a queue without priorities is one quorum queue, not three)."""
        for queue in queues:
            for band in self.topology.bands(queue)[:-1]:
                if self.topology.known(band):
                    continue
                channel = consumer.connection.channel()
                try:
                    channel.queue_declare(band, passive=True)
                    self.topology.found(band)
                    channel.close()
                except amqp.exceptions.NotFound:
                    pass  # the server closed the channel

    def _record_holding(self, consumer_id: str, consumer: _Consumer) -> None:
        """Write what the consumer holds to its BrokerConsumer row when it changed: the operator's
        pages (and revoke's report) read it there, as RabbitMQ cannot be asked."""
        holding = sorted([self.topology.queue_of(entry.band), key]
                         for key, entries in consumer.held.items() for entry in entries)
        if holding == consumer.recorded:
            return
        BrokerConsumer.objects.using(self.state.alias).bulk_create(
            [BrokerConsumer(consumer_id=consumer_id, last_heartbeat=timezone.now(), holding=holding)],
            update_conflicts=True, unique_fields=["consumer_id"], update_fields=["last_heartbeat", "holding"])
        consumer.recorded = holding

    def _get(self, consumer: _Consumer, bands: list[str], count: int) -> list[tuple[str, amqp.Message]]:
        """Up to `count` messages by basic.get, band by band: one round trip each, so only for
        one-off reserves and the dead queue."""
        taken: list[tuple[str, amqp.Message]] = []
        for band in bands:
            while len(taken) < count:
                message = consumer.channel.basic_get(band, no_ack=False)
                if message is None:
                    break
                taken.append((band, message))
        return taken

    def _stream(self, consumer_id: str, consumer: _Consumer, bands: list[str], count: int,
                timeout: float) -> list[tuple[str, amqp.Message]]:
        """Take from what the standing consumers were pushed. Their prefetch follows the batch the
        worker asks for while messages are there (RabbitMQ pushes the next ones as the last are
        acked), and is one while idle, so a burst wakes one message per idle consumer."""
        if not bands:  # every queue paused: stop the pushes, give back what came, wait
            self._stand(consumer, [], 1)
            self._send_back_pushed(consumer, consumer_id)
            time.sleep(max(0.0, timeout))
            return []
        if count <= 0:
            return []
        if consumer.standing and list(consumer.standing) != bands and consumer.pushed:
            self._send_back_pushed(consumer, consumer_id)  # its queues changed (one was paused)
        self._stand(consumer, bands, consumer.prefetch or 1)
        self._drain(consumer, 0)
        if not consumer.pushed and consumer.prefetch > 1:
            self._drain(consumer, min(timeout, FLOW_GRACE))  # pushes follow the acks that freed credit
        self._let_higher_bands_catch_up(consumer, bands, timeout)
        if consumer.pushed:
            taken = self._take_pushed(consumer, bands, count)
            if len(taken) >= consumer.prefetch and count > consumer.prefetch:
                self._stand(consumer, bands, min(count, MAX_PREFETCH))  # saturated: let more come at once
            elif count < consumer.prefetch:
                self._stand(consumer, bands, count)  # a long task cut the batch: hold no more than asked
                self._send_back_pushed(consumer, consumer_id)
            return taken
        if timeout <= 0:
            return []
        self._record_holding(consumer_id, consumer)  # what it acked since is no longer held
        self._stand(consumer, bands, 1)
        deadline = time.monotonic() + timeout
        while not consumer.pushed and time.monotonic() < deadline:
            self._drain(consumer, min(WAIT_SLICE, deadline - time.monotonic()))
        self._let_higher_bands_catch_up(consumer, bands, deadline - time.monotonic())
        return self._take_pushed(consumer, bands, 1)

    def _let_higher_bands_catch_up(self, consumer: _Consumer, bands: list[str], timeout: float) -> None:
        """Each band pushes one message at a time while idle: before a lower band's message is
        taken, give a higher band whose next message may be on its way (its consumer was just
        made, or its last message acked) a moment to deliver it, so priorities keep their order."""
        if consumer.pushed and consumer.stirred:
            order = {band: index for index, band in enumerate(bands)}
            best = min(order.get(band, len(bands)) for band, _ in consumer.pushed)
            if any(order.get(band, len(bands)) < best for band in consumer.stirred):
                self._drain(consumer, min(max(0.0, timeout), FLOW_GRACE))
        consumer.stirred.clear()

    def _stand(self, consumer: _Consumer, bands: list[str], prefetch: int) -> None:
        """Standing basic.consume on each band with this prefetch (per consumer: quorum queues
        have no global QoS); re-made when either changes. What was pushed stays pushed."""
        if list(consumer.standing) == bands and consumer.prefetch == prefetch:
            return
        for tag in consumer.standing.values():
            consumer.channel.basic_cancel(tag)
        consumer.channel.basic_qos(0, prefetch, False)
        consumer.standing = {band: consumer.channel.basic_consume(
            band, callback=lambda message, band=band: consumer.pushed.append((band, message))) for band in bands}
        consumer.prefetch = prefetch
        consumer.stirred = set(bands)

    @staticmethod
    def _drain(consumer: _Consumer, timeout: float) -> None:
        """Read what RabbitMQ sent, waiting up to `timeout` s for the first frame."""
        try:
            consumer.connection.drain_events(timeout=max(0.0, timeout))
            while True:  # and whatever else is already here, without waiting
                consumer.connection.drain_events(timeout=0)
        except TimeoutError:
            pass

    @staticmethod
    def _take_pushed(consumer: _Consumer, bands: list[str], count: int) -> list[tuple[str, amqp.Message]]:
        """Up to `count` of what was pushed, band by band in the order given, first in first out."""
        order = {band: index for index, band in enumerate(bands)}
        chosen = sorted((order[band], i) for i, (band, _) in enumerate(consumer.pushed) if band in order)[:count]
        picked = {i for _, i in chosen}
        taken = [consumer.pushed[i] for _, i in chosen]
        consumer.pushed = [item for i, item in enumerate(consumer.pushed) if i not in picked]
        return taken

    def _send_back_pushed(self, consumer: _Consumer, consumer_id: str) -> None:
        """What was pushed but not asked for goes back to its queue (sent again, then acked: not
        counted as a redelivery), for other consumers."""
        pushed, consumer.pushed = consumer.pushed, []
        again = [self._delivery(consumer, consumer_id, band, message) for band, message in pushed]
        if again:
            self._send_again(consumer, again, None, redelivered=False)

    def _delivery(self, consumer: _Consumer, consumer_id: str, source: str, message: amqp.Message) -> Delivery:
        headers = message.headers or {}
        band = headers.get(HEADER_QUEUE) or source
        key = message.properties.get("message_id") or ""
        redeliveries = int(headers.get(HEADER_COUNT, 0)) + int(headers.get("x-delivery-count", 0))
        if source == self.topology.dead:
            # over RabbitMQ's delivery limit (or with no queue to go to): dead-lettered unread
            redeliveries = max(redeliveries, self.max_redeliveries + 3)
        consumer.held.setdefault(key, []).append(_Held(band, message))
        body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
        return Delivery(key=key, body=body, queue=self.topology.queue_of(band), consumer_id=consumer_id,
                        redeliveries=redeliveries)

    def _drop_cancelled(self, consumer_id: str, deliveries: list[Delivery]) -> list[Delivery]:
        if not deliveries:
            return deliveries
        cancelled = set(CancelledTask.objects.using(self.state.alias).filter(
            task_id__in={d.key.split("~", 1)[0] for d in deliveries}, expires_at__gt=timezone.now())
            .values_list("task_id", flat=True))
        if not cancelled:
            return deliveries
        self.ack([d for d in deliveries if d.key.split("~", 1)[0] in cancelled])
        return [d for d in deliveries if d.key.split("~", 1)[0] not in cancelled]

    def _pop_held(self, consumer: _Consumer, key: str) -> _Held | None:
        held = consumer.held.get(key)
        if not held:
            return None
        first = held.pop(0)
        if not held:
            del consumer.held[key]
        return first

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        for consumer_id, group in _by_consumer(deliveries).items():
            consumer = self._consumers.get(consumer_id)
            if consumer is None:
                # Not this process's connection (the supervisor acking for a killed child): that
                # connection closed, and the message comes back to a consumer that sees its outcome.
                continue
            try:
                with consumer.lock:
                    for delivery in group:
                        held = self._pop_held(consumer, delivery.key)
                        if held is not None:
                            consumer.channel.basic_ack(held.message.delivery_tag)
                            consumer.stirred.add(held.band)
            except Exception:
                # a broken connection acks nothing more: RabbitMQ hands out again what it held
                # (the outcomes are stored), and the next reserve opens a new one
                self._drop_consumer(consumer_id)
                raise

    def release(self, deliveries: Sequence[Delivery], *, delay: float = 0.0) -> None:
        """Sent again (after `delay`), then acked: a release does not count as a redelivery, as a
        requeue would in a quorum queue."""
        eta = time.time() + delay if delay else None
        for consumer_id, group in _by_consumer(deliveries).items():
            consumer = self._consumers.get(consumer_id)
            if consumer is None:
                continue
            self._send_again(consumer, group, eta, redelivered=False)

    def _send_again(self, consumer: _Consumer, deliveries: Sequence[Delivery], eta: float | None,
                    redelivered: bool) -> int:
        with consumer.lock:
            bands = {d.key: entries[0].band for d in deliveries if (entries := consumer.held.get(d.key))}
            again = [d for d in deliveries if d.key in bands]
            try:
                self._send(self._publisher(), [Outgoing(d.queue, d.key, d.body, eta) for d in again],
                           redeliveries={d.key: d.redeliveries + int(redelivered) for d in again}, bands=bands)
            except Exception:
                self._drop_publisher()  # as publish() does: the next send opens a new connection
                raise
            for delivery in again:
                held = self._pop_held(consumer, delivery.key)
                if held is not None:
                    consumer.channel.basic_ack(held.message.delivery_tag)
        return len(again)

    # -- leases --------------------------------------------------------------------------------

    def leases(self, alive: Sequence[str] = (), *, requeue: Sequence[str] = (), stale_after: float | None = None,
               redelivered: bool = True, running: Sequence[str] = ()) -> Leases:
        """Renewals and terminations as on the database broker. A named consumer of this process
        gives back what it holds; what a dead one held RabbitMQ has already taken back."""
        state = self.state.leases(alive, requeue=requeue, stale_after=stale_after, running=running)
        requeued = 0
        for consumer_id in requeue:
            consumer = self._consumers.get(consumer_id)
            if consumer is None:
                continue
            try:
                requeued += self._give_back(consumer, consumer_id, redelivered)
            finally:
                self._drop_consumer(consumer_id)
        return Leases(requeued, state.terminations)

    def _give_back(self, consumer: _Consumer, consumer_id: str, redelivered: bool) -> int:
        """What a consumer holds, back to its queues: rejected (the quorum queue counts a
        redelivery), or, when it must not count, sent again with its count and acked."""
        with consumer.lock:
            for band, message in consumer.pushed:  # pushed and not handed out yet: held all the same
                self._delivery(consumer, consumer_id, band, message)
            consumer.pushed = []
            held = [(key, entry) for key, entries in consumer.held.items() for entry in entries]
            if redelivered:
                consumer.held.clear()
                for _, entry in held:
                    consumer.channel.basic_reject(entry.message.delivery_tag, requeue=True)
                return len(held)
            again = [self._delivery(consumer, consumer_id, entry.band, entry.message) for _, entry in held]
            for key, entry in held:  # _delivery held them once more
                consumer.held[key].remove(entry)
            return self._send_again(consumer, again, None, redelivered=False)

    # -- revocation, locks, operator tools -----------------------------------------------------

    def cancel(self, task_id: str, ttl: float, *, terminate: str | None = None) -> None:
        self.state.cancel(task_id, ttl, terminate=terminate)

    def lock(self, name: str, owner: str, stale_after: float | None) -> bool:
        return self.state.lock(name, owner, stale_after)

    def inspect(self, keys: Sequence[str] = (), *, holders: bool = False, queue: str | None = None,
                offset: int = 0, limit: int = 0) -> Holdings:
        """Ready messages per queue (RabbitMQ's counts) and, with `holders`, the consumers' lease
        ages and what each holds (as they wrote it). RabbitMQ cannot be read by message key: no
        bodies but of what this process's consumers hold, no pages of waiting keys."""
        sizes = {name: count for name in self._known_queues() if (count := self._ready(name)) is not None}
        bodies = {}
        for consumer in list(self._consumers.values()):
            for key in keys:
                if entries := consumer.held.get(key):
                    bodies[key] = entries[0].message.body
        if not holders:
            return Holdings(sizes, bodies)
        now = timezone.now()
        consumers: dict[str, float] = {}
        held: dict[str, list[str]] = {}
        inflight: dict[str, int] = {}
        for consumer_id, beat, holding in BrokerConsumer.objects.using(self.state.alias).values_list(
                "consumer_id", "last_heartbeat", "holding"):
            consumers[consumer_id] = (now - beat).total_seconds()
            for queue_name, key in holding or []:
                held.setdefault(consumer_id, []).append(key)
                inflight[queue_name] = inflight.get(queue_name, 0) + 1
        return Holdings(sizes, bodies, consumers=consumers, held=held, inflight=inflight)

    def _known_queues(self) -> set[str]:
        from ..conf import get_settings
        from ..models import WorkerRecord

        names = {get_settings().DEFAULT_QUEUE}
        names |= {self.topology.queue_of(band) for band in self.topology._declared
                  if band.startswith(f"{self.prefix}.") and not band.startswith((self.topology.due, self.topology.dead,
                                                                                 f"{self.prefix}.delay."))}
        for queues in WorkerRecord.objects.values_list("queues", flat=True):
            names |= set(queues or [])
        return names

    def _ready(self, queue: str) -> int | None:
        """Ready messages of `queue` over its bands; None if it was never declared. On channels of
        this thread's publishing connection (a passive declare of a missing queue closes its channel)."""
        connection = self._publisher().connection
        total, found = 0, False
        for band in self.topology.bands(queue):
            channel = connection.channel()
            try:
                total += channel.queue_declare(band, passive=True).message_count
                found = True
                channel.close()
            except amqp.exceptions.NotFound:
                pass  # the server closed the channel
            except Exception:
                self._drop_publisher()
                raise
        return total if found else None

    def close(self) -> None:
        for consumer_id in list(self._consumers):
            self._drop_consumer(consumer_id)
        self._drop_publisher()
        self.state.close()


def _by_consumer(deliveries: Sequence[Delivery]) -> dict[str, list[Delivery]]:
    groups: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        groups.setdefault(delivery.consumer_id, []).append(delivery)
    return groups


def _close(connection: amqp.Connection) -> None:
    try:
        connection.close()
    except Exception:  # already broken: nothing left to close properly
        try:
            connection.collect()
        except Exception:
            pass
