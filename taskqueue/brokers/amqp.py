"""The RabbitMQ broker (`amqp://`): messages in quorum queues, the rest in the project's database.

RabbitMQ holds every message, in the queues `amqptopology.py` names and declares: one per queue
and priority band (made by the first message of that priority: RabbitMQ 3.x quorum queues know no
priorities), a ladder of delay queues for countdown/eta, and `<prefix>.dead` for what has no
queue to go to or is over its delivery limit. Workers look there now and then: what is over its
limit goes into the dead letters with the reason; a countdown that fell due with no queue to take
it goes to its queue again.

What RabbitMQ cannot hold (revoked task ids, lock_key mutexes, consumer leases for those locks,
what each consumer holds for the operator's pages) is kept in the database broker's tables. A
delivery belongs to the connection that received it: a consumer that dies loses its connection,
and RabbitMQ hands its messages out again (counted in the quorum queue's `x-delivery-count`), so
leases need no renewal here.

Connections: one per thread for publishing (publisher confirms: `publish` returns once RabbitMQ has
every message; `amqpwire.py`), one per consumer for reserving (`amqpconsumer.py`): a standing
basic.consume per queue band whose prefetch follows the batch the worker asks for, and is one
while idle (see `_stream`). A one-off reserve (a purge) uses basic.get instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import amqp
from django.utils import timezone

from ..models import BrokerConsumer, OutboxMessage
from .amqpconsumer import FLOW_GRACE, Consumer, Held, by_consumer
from .amqptopology import DELAY_RUNGS, DELAY_UNIT, HEADER_COUNT, HEADER_QUEUE, Topology, delay_routing_key
from .amqpwire import Publisher, close_quietly, connect, parse_url
from .base import Broker, Delivery, Holdings, Leases, Outgoing
from .database import DatabaseBroker

logger = logging.getLogger("taskqueue.broker")

DEAD_LOOK_EVERY = 1.0  # seconds between a consumer's looks at the dead queue
BAND_LOOK_EVERY = 10.0  # seconds between a consumer's looks for new priority bands (notices tell it at once)
MAX_PREFETCH = 64  # most messages a consumer in a flow is pushed ahead of what it took


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
        self._consumers: dict[str, Consumer] = {}
        self._consumers_lock = threading.Lock()

    # -- publishing ----------------------------------------------------------------------------

    def _publisher(self) -> Publisher:
        publisher = getattr(self._local, "publisher", None)
        if publisher is None:
            publisher = self._local.publisher = Publisher(self.params)
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

    def _send(self, publisher: Publisher, messages: Iterable[Outgoing], redeliveries: dict[str, int],
              bands: dict[str, str] | None = None) -> None:
        now = time.time()
        channel = publisher.channel
        for m in messages:
            band = (bands or {}).get(m.key) or self.topology.band(m.queue, m.priority)
            if not self.topology.known(band):
                self.topology.declare_band(channel, band)
                if band != self.topology.band(m.queue, 0):  # a priority band: consumers take it from now
                    publisher.send(amqp.Message(band), self.topology.notices, "", mandatory=False)
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

    def _consumer(self, consumer_id: str) -> Consumer:
        consumer = self._consumers.get(consumer_id)
        if consumer is None:
            consumer = Consumer.open(connect(self.params), self.topology)
            with self._consumers_lock:
                self._consumers[consumer_id] = consumer
        return consumer

    def _drop_consumer(self, consumer_id: str) -> None:
        with self._consumers_lock:
            consumer = self._consumers.pop(consumer_id, None)
        if consumer is not None:
            close_quietly(consumer.connection)  # RabbitMQ hands out again what it still held

    def reserve(self, consumer_id: str, queues: list[str], *, count: int = 1,
                timeout: float = 1.0) -> list[Delivery]:
        consumer = self._consumer(consumer_id)
        try:
            with consumer.lock:
                looking_at = (self.topology.generation, frozenset(queues))
                if consumer.looked != looking_at or time.monotonic() >= consumer.next_band_look:
                    consumer.looked, consumer.next_band_look = looking_at, time.monotonic() + BAND_LOOK_EVERY
                    self.topology.find_bands(consumer.connection, queues)  # made before its notices were bound
                consumer.bands_changed = False
                bands = [band for queue in queues for band in self.topology.bands(queue)
                         if band == self.topology.band(queue, 0) or self.topology.known(band)]
                for band in bands:
                    self.topology.declare_band(consumer.channel, band)
                taken = []
                if time.monotonic() >= consumer.next_dead_look:  # now and then, not on every reserve
                    consumer.next_dead_look = time.monotonic() + DEAD_LOOK_EVERY
                    taken = self._from_the_dead_queue(consumer, consumer_id, count)
                if consumer.standing or timeout > 0:
                    taken += self._stream(consumer_id, consumer, bands, count - len(taken), timeout)
                else:  # a one-off reserve (a purge, a tool): no consumer left standing
                    taken += consumer.get(bands, count - len(taken))
                deliveries = [self._delivery(consumer, consumer_id, band, message) for band, message in taken]
                task_ids = [d.key.split("~", 1)[0] for d in deliveries]
                revoked = self._record_holding(consumer_id, consumer, task_ids)
            if revoked:
                deliveries = [replace(d, revoked=True) if task_id in revoked else d
                              for d, task_id in zip(deliveries, task_ids, strict=True)]
        except Exception:
            self._drop_consumer(consumer_id)
            self.topology.forget()  # the next connection may be to a node that lost them (as on publish)
            raise
        return deliveries

    def _record_holding(self, consumer_id: str, consumer: Consumer, task_ids: Sequence[str] = ()) -> set[str]:
        """Write what the consumer holds to its BrokerConsumer row when it changed (the operator's
        pages, and revoke's report, read it there, as RabbitMQ cannot be asked); returns which of
        `task_ids`, just taken, are revoked (their messages are handed out marked)."""
        holding = sorted([self.topology.queue_of(entry.band), key]
                         for key, entries in consumer.held.items() for entry in entries)
        changed = holding != consumer.recorded
        if not changed and not task_ids:
            return set()
        revoked = self.state.record_holding(consumer_id, holding if changed else None, task_ids)
        consumer.recorded = holding
        return revoked

    def _stream(self, consumer_id: str, consumer: Consumer, bands: list[str], count: int,
                timeout: float) -> list[tuple[str, amqp.Message]]:
        """Take from what the standing consumers were pushed. Their prefetch follows the batch the
        worker asks for while messages are there (RabbitMQ pushes the next ones as the last are
        acked), and is one while idle, so a burst wakes one message per idle consumer."""
        if not bands:  # every queue paused: stop the pushes, give back what came, wait
            consumer.stand([], 1)
            self._send_back_pushed(consumer, consumer_id)
            time.sleep(max(0.0, timeout))
            return []
        if count <= 0:
            return []
        if consumer.standing and list(consumer.standing) != bands and consumer.pushed:
            self._send_back_pushed(consumer, consumer_id)  # its queues changed (one was paused)
        consumer.stand(bands, consumer.prefetch or 1)
        consumer.drain(0)
        if not consumer.pushed and consumer.prefetch > 1:
            consumer.drain(min(timeout, FLOW_GRACE))  # pushes follow the acks that freed credit
        consumer.let_higher_bands_catch_up(bands, timeout)
        if consumer.pushed:
            taken = consumer.take_pushed(bands, count)
            if len(taken) >= consumer.prefetch and count > consumer.prefetch:
                consumer.stand(bands, min(count, MAX_PREFETCH))  # saturated: let more come at once
            elif count < consumer.prefetch:
                consumer.stand(bands, count)  # a long task cut the batch: hold no more than asked
                self._send_back_pushed(consumer, consumer_id)
            return taken
        if timeout <= 0:
            return []
        self._record_holding(consumer_id, consumer)  # what it acked since is no longer held
        consumer.stand(bands, 1)
        deadline = time.monotonic() + timeout
        while not consumer.pushed and not consumer.bands_changed and (left := deadline - time.monotonic()) > 0:
            consumer.lock.release()  # other threads ack on this connection while it sleeps
            try:
                consumer.wait_readable(left)
            finally:
                consumer.lock.acquire()
            consumer.drain(0)
        consumer.let_higher_bands_catch_up(bands, deadline - time.monotonic())
        return consumer.take_pushed(bands, 1)

    def _send_back_pushed(self, consumer: Consumer, consumer_id: str) -> None:
        """What was pushed but not asked for goes back to its queue (sent again, then acked: not
        counted as a redelivery), for other consumers."""
        pushed, consumer.pushed = consumer.pushed, []
        again = [self._delivery(consumer, consumer_id, band, message) for band, message in pushed]
        if again:
            self._send_again(consumer, again, None, redelivered=False)

    def _from_the_dead_queue(self, consumer: Consumer, consumer_id: str, count: int) -> list[tuple[str, amqp.Message]]:
        """What is over a delivery limit, to be dead-lettered unread. A countdown that fell due
        while no queue took it (its queue deleted, or a node starting again that expired it before
        its bindings were back) is sent to its queue again, declared anew, and not counted."""
        taken = consumer.get([self.topology.dead], count)
        due = [(band, message) for band, message in taken if _death_reason(message) == "expired"]
        if not due:
            return taken
        again = [self._delivery(consumer, consumer_id, band, message) for band, message in due]
        for delivery in again:
            band = consumer.held[delivery.key][0].band
            logger.warning("Message %s fell due with no queue to take it; sent to %s again", delivery.key, band)
            self.topology.declare_again(band)
        self._send_again(consumer, again, None, redelivered=False)
        return [entry for entry in taken if entry not in due]

    def _delivery(self, consumer: Consumer, consumer_id: str, source: str, message: amqp.Message) -> Delivery:
        headers = message.headers or {}
        band = headers.get(HEADER_QUEUE) or source
        key = message.properties.get("message_id") or ""
        redeliveries = int(headers.get(HEADER_COUNT, 0)) + int(headers.get("x-delivery-count", 0))
        if source == self.topology.dead and _death_reason(message) != "expired":
            # over RabbitMQ's delivery limit: dead-lettered unread
            redeliveries = max(redeliveries, self.max_redeliveries + 3)
        consumer.held.setdefault(key, []).append(Held(band, message))
        body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
        return Delivery(key=key, body=body, queue=self.topology.queue_of(band), consumer_id=consumer_id,
                        redeliveries=redeliveries)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        for consumer_id, group in by_consumer(deliveries).items():
            consumer = self._consumers.get(consumer_id)
            if consumer is None:
                # Not this process's connection (the supervisor acking for a killed child): that
                # connection closed, and the message comes back to a consumer that sees its outcome.
                continue
            try:
                with consumer.lock:
                    for delivery in group:
                        held = consumer.pop_held(delivery.key)
                        if held is not None:
                            consumer.channel.basic_ack(held.message.delivery_tag)
                            consumer.stirred.add(held.band)
            except Exception:
                # a broken connection acks nothing more: RabbitMQ hands out again what it held
                # (the outcomes are stored), and the next reserve opens a new one
                self._drop_consumer(consumer_id)
                raise

    def pushing(self, consumer_id: str) -> bool:
        consumer = self._consumers.get(consumer_id)
        return consumer is not None and consumer.may_hold_untaken()

    def running_long(self, consumer_id: str) -> None:
        consumer = self._consumers.get(consumer_id)
        if consumer is None:
            return
        with consumer.lock:
            consumer.stand([], 1)  # what was sent before the cancels' replies is read meanwhile
            self._send_back_pushed(consumer, consumer_id)

    def release(self, deliveries: Sequence[Delivery], *, delay: float = 0.0) -> None:
        """Sent again (after `delay`), then acked: a release does not count as a redelivery, as a
        requeue would in a quorum queue."""
        eta = time.time() + delay if delay else None
        for consumer_id, group in by_consumer(deliveries).items():
            consumer = self._consumers.get(consumer_id)
            if consumer is None:
                continue
            self._send_again(consumer, group, eta, redelivered=False)

    def _send_again(self, consumer: Consumer, deliveries: Sequence[Delivery], eta: float | None,
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
                held = consumer.pop_held(delivery.key)
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

    def _give_back(self, consumer: Consumer, consumer_id: str, redelivered: bool) -> int:
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

        names = {get_settings().DEFAULT_QUEUE} | self.topology.declared_queues()
        for queues in WorkerRecord.objects.values_list("queues", flat=True):
            names |= set(queues or [])
        return names

    def _ready(self, queue: str) -> int | None:
        """On this thread's publishing connection."""
        try:
            return self.topology.ready(self._publisher().connection, queue)
        except Exception:
            self._drop_publisher()
            raise

    def close(self) -> None:
        for consumer_id in list(self._consumers):
            self._drop_consumer(consumer_id)
        self._drop_publisher()
        self.state.close()


def _death_reason(message: amqp.Message) -> str:
    """Why RabbitMQ dead-lettered a message last ("delivery_limit", "expired", ...): the newest
    entry of its x-death header comes first."""
    deaths = (message.headers or {}).get("x-death") or []
    return str(deaths[0].get("reason", "")) if deaths and isinstance(deaths[0], dict) else ""
