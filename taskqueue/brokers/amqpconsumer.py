"""One RabbitMQ consumer connection of the broker in `amqp.py`: what it holds, what RabbitMQ pushed
to it, and its standing basic.consume per queue band."""

from __future__ import annotations

import select
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import amqp

from .amqptopology import Topology
from .base import Delivery

FLOW_GRACE = 0.01  # seconds a consumer in a flow waits for the pushes its last acks made room for


@dataclass
class Held:
    band: str
    message: amqp.Message


@dataclass
class Consumer:
    """A consumer's connection: what it holds (key -> deliveries), what RabbitMQ pushed that
    `reserve` has not handed out yet, and its standing basic.consume per band."""

    connection: amqp.Connection
    channel: amqp.Channel
    lock: threading.RLock = field(default_factory=threading.RLock)
    held: dict[str, list[Held]] = field(default_factory=dict)
    pushed: list[tuple[str, amqp.Message]] = field(default_factory=list)  # (band, message)
    standing: dict[str, str] = field(default_factory=dict)  # band -> consumer tag
    prefetch: int = 0  # of the standing consumers (each band's)
    # bands that may have a next message on its way: consumers just made, or a message acked
    stirred: set[str] = field(default_factory=set)
    next_dead_look: float = 0.0
    next_band_look: float = 0.0
    looked: tuple[int, frozenset[str]] = (-1, frozenset())  # topology generation and queues of the last look
    bands_changed: bool = False  # a band notice came: the next reserve takes that band too
    recorded: list[list[str]] = field(default_factory=list)  # the holding last written to the database

    @classmethod
    def open(cls, connection: amqp.Connection, topology: Topology) -> Consumer:
        """A consumer on this connection, bound to the band notices: a notice makes the band known
        and ends the consumer's idle wait, so its next reserve takes that band too."""
        channel = connection.channel()
        channel.basic_qos(0, 1, False)  # per consumer (quorum queues know no global QoS)
        consumer = cls(connection, channel)
        topology.declare_dead(channel)  # with the notices exchange
        notices = channel.queue_declare("", exclusive=True, auto_delete=True).queue
        channel.queue_bind(notices, topology.notices)

        def band_made(message: amqp.Message) -> None:
            body = message.body
            topology.found(body.decode() if isinstance(body, bytes) else str(body))
            consumer.bands_changed = True

        channel.basic_consume(notices, no_ack=True, callback=band_made)
        return consumer

    def get(self, bands: list[str], count: int) -> list[tuple[str, amqp.Message]]:
        """Up to `count` messages by basic.get, band by band: one round trip each, so only for
        one-off reserves and the dead queue."""
        taken: list[tuple[str, amqp.Message]] = []
        for band in bands:
            while len(taken) < count:
                message = self.channel.basic_get(band, no_ack=False)
                if message is None:
                    break
                taken.append((band, message))
        return taken

    def stand(self, bands: list[str], prefetch: int) -> None:
        """Standing basic.consume on each band with this prefetch (per consumer: quorum queues
        have no global QoS); re-made when either changes. What was pushed stays pushed."""
        if list(self.standing) == bands and self.prefetch == prefetch:
            return
        for tag in self.standing.values():
            self.channel.basic_cancel(tag)
        self.channel.basic_qos(0, prefetch, False)
        self.standing = {band: self.channel.basic_consume(
            band, callback=lambda message, band=band: self.pushed.append((band, message))) for band in bands}
        self.prefetch = prefetch
        self.stirred = set(bands)

    def may_hold_untaken(self) -> bool:
        """Whether messages the worker did not take may wait here: pushed and not taken yet, or
        on their way (the standing consumers hold fewer unacked messages than their prefetch; those
        taken from consumers cancelled since count for none)."""
        with self.lock:
            if self.pushed:
                return True
            if not self.standing:
                return False
            tags = set(self.standing.values())
            held = sum(entry.message.delivery_info.get("consumer_tag") in tags
                       for entries in self.held.values() for entry in entries)
            return held < self.prefetch

    def drain(self, timeout: float) -> None:
        """Read what RabbitMQ sent, waiting up to `timeout` s for the first frame."""
        try:
            self.connection.drain_events(timeout=max(0.0, timeout))
            while True:  # and whatever else is already here, without waiting
                self.connection.drain_events(timeout=0)
        except TimeoutError:
            pass

    def wait_readable(self, seconds: float) -> None:
        """Sleep until RabbitMQ sent something or `seconds` pass, reading nothing, so the caller
        can leave `lock` to other threads (their acks) meanwhile."""
        transport = self.connection.transport
        sock = transport.sock
        if transport._read_buffer or (hasattr(sock, "pending") and sock.pending()):
            return  # part of a frame is read already (or decrypted and waiting)
        select.select([sock], [], [], max(0.0, seconds))

    def take_pushed(self, bands: list[str], count: int) -> list[tuple[str, amqp.Message]]:
        """Up to `count` of what was pushed, band by band in the order given, first in first out."""
        order = {band: index for index, band in enumerate(bands)}
        chosen = sorted((order[band], i) for i, (band, _) in enumerate(self.pushed) if band in order)[:count]
        picked = {i for _, i in chosen}
        taken = [self.pushed[i] for _, i in chosen]
        self.pushed = [item for i, item in enumerate(self.pushed) if i not in picked]
        return taken

    def let_higher_bands_catch_up(self, bands: list[str], timeout: float) -> None:
        """Each band pushes one message at a time while idle: before a lower band's message is
        taken, give a higher band whose next message may be on its way (its consumer was just
        made, or its last message acked) a moment to deliver it, so priorities keep their order."""
        if self.pushed and self.stirred:
            order = {band: index for index, band in enumerate(bands)}
            best = min(order.get(band, len(bands)) for band, _ in self.pushed)
            if any(order.get(band, len(bands)) < best for band in self.stirred):
                self.drain(min(max(0.0, timeout), FLOW_GRACE))
        self.stirred.clear()

    def pop_held(self, key: str) -> Held | None:
        held = self.held.get(key)
        if not held:
            return None
        first = held.pop(0)
        if not held:
            del self.held[key]
        return first


def by_consumer(deliveries: Sequence[Delivery]) -> dict[str, list[Delivery]]:
    groups: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        groups.setdefault(delivery.consumer_id, []).append(delivery)
    return groups
