"""What the RabbitMQ broker (`amqp.py`) declares, and how it names it.

A queue `<prefix>.<queue>` per queue and priority band (`~4`, `~7` for priorities 4-6 and 7-9);
for countdown/eta a ladder of delay queues, one per power of two of DELAY_UNIT, each with its own
fixed TTL (so what expires first is always at its head), dead-lettering to the next rung and at
the bottom, through the `<prefix>.due` headers exchange, into the queue named by the message's
HEADER_QUEUE; `<prefix>.dead` takes what has no queue to go to and what is over a queue's delivery
limit. Everything is a durable quorum queue. The `<prefix>.bands` fanout exchange tells consumers
(each through an exclusive queue of its own) of a priority band the moment a publisher makes it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import amqp

DELAY_UNIT = 0.05  # seconds: a countdown is rounded up to this
DELAY_RUNGS = 32  # 2**32 units of 50 ms: about 6.8 years
BANDS = ((7, "~7"), (4, "~4"), (0, ""))  # priority from, queue name suffix; highest first
HEADER_QUEUE = "tq-queue"  # the queue a delayed message goes to when due (no "x-": a headers exchange ignores those)
HEADER_COUNT = "tq-redeliveries"  # redeliveries counted before the message was sent again


class Topology:
    """Names, and declaring what a channel is about to use (once per process and name)."""

    def __init__(self, prefix: str, delivery_limit: int):
        self.prefix = prefix
        self.delivery_limit = delivery_limit
        self.due = f"{prefix}.due"
        self.dead = f"{prefix}.dead"
        self.notices = f"{prefix}.bands"  # fanout: "this priority band was just made", to consumers
        self.generation = 0  # one more each time everything declared is forgotten
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

    def declared(self) -> set[str]:
        """Every name this process declared or found ("ladder" for the delay queues)."""
        with self._lock:
            return set(self._declared)

    def declared_queues(self) -> set[str]:
        """The taskqueue queues whose bands this process declared or found."""
        skip = (self.due, self.dead, self.notices, f"{self.prefix}.delay.")
        return {self.queue_of(name) for name in self.declared()
                if name.startswith(f"{self.prefix}.") and not name.startswith(skip)}

    def queue_of(self, band: str) -> str:
        name = band[len(self.prefix) + 1:]
        return name.rsplit("~", 1)[0] if name[-2:] in ("~7", "~4") else name

    def rung(self, n: int) -> str:
        return f"{self.prefix}.delay.{n}"

    def ready(self, connection: amqp.Connection, queue: str) -> int | None:
        """Ready messages of `queue` over its bands; None if it was never declared. Each band is
        asked on a channel of its own: a passive declare of a missing queue closes its channel."""
        total, found = 0, False
        for band in self.bands(queue):
            channel = connection.channel()
            try:
                total += channel.queue_declare(band, passive=True).message_count
                found = True
                channel.close()
            except amqp.exceptions.NotFound:
                pass  # the server closed the channel
        return total if found else None

    def find_bands(self, connection: amqp.Connection, queues: list[str]) -> None:
        """The priority bands of these queues that exist, asked one by one (a band is made by the
        first publish of its priority, so a queue without priorities is one quorum queue, not three)."""
        for queue in queues:
            for band in self.bands(queue)[:-1]:
                if self.known(band):
                    continue
                channel = connection.channel()
                try:
                    channel.queue_declare(band, passive=True)
                    self.found(band)
                    channel.close()
                except amqp.exceptions.NotFound:
                    pass  # the server closed the channel

    def _once(self, name: str, declare: Callable[[], None]) -> None:
        if name in self._declared:
            return
        declare()
        with self._lock:
            self._declared.add(name)

    def declare_again(self, name: str) -> None:
        """Declared again before its next use (it may have been deleted)."""
        with self._lock:
            self._declared.discard(name)

    def forget(self) -> None:
        """After a reconnect to a broker that may have lost them (a new node, a reset)."""
        with self._lock:
            self._declared.clear()
            self.generation += 1

    def declare_dead(self, channel: amqp.Channel) -> None:
        def declare():
            channel.exchange_declare(self.dead, "fanout", durable=True, auto_delete=False)
            channel.queue_declare(self.dead, durable=True, auto_delete=False,
                                  arguments={"x-queue-type": "quorum"})
            channel.queue_bind(self.dead, self.dead)
            channel.exchange_declare(self.due, "headers", durable=True, auto_delete=False,
                                     arguments={"alternate-exchange": self.dead})
            channel.exchange_declare(self.notices, "fanout", durable=True, auto_delete=False)
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
