"""The broker contract: queues of opaque bytes with delays and per-consumer leases."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class Delivery:
    """A message handed to one consumer; it stays leased to it until ack or release."""

    key: str  # unique per published message (a task id, or task id + attempt for retries)
    body: bytes
    queue: str
    consumer_id: str
    redeliveries: int = 0  # times it was taken back from a dead consumer


@dataclass(frozen=True)
class Leases:
    """Who holds what, for operators (`app.control.inspect()`): read, never acted on."""

    consumers: dict[str, float]  # consumer id -> seconds since its last heartbeat
    held: dict[str, list[str]]  # consumer id -> keys of the messages leased to it
    delayed: list[tuple[str, float]]  # keys waiting for their eta (epoch seconds), soonest first


class Broker(ABC):
    """Every broker implements these; results, locks and notifications live elsewhere."""

    @abstractmethod
    def publish(self, queue: str, key: str, body: bytes, *, eta: float | None = None,
                priority: int = 0, remember: float | None = None) -> None:
        """Store the message durably; it is invisible until `eta` (epoch seconds) if given. With
        `remember`, `published` knows its key for that many seconds (the outbox asks)."""

    def publish_many(self, items: list[tuple[str, str, bytes, float | None, int]], *,
                     remember: float | None = None) -> None:
        """Publish (queue, key, body, eta, priority) items; brokers batch where they can."""
        for queue, key, body, eta, priority in items:
            self.publish(queue, key, body, eta=eta, priority=priority, remember=remember)

    def published(self, keys: list[str]) -> set[str]:
        """Which of these keys were published with `remember` within its time (none here: a broker
        in the database needs no outbox)."""
        return set()

    @abstractmethod
    def reserve(self, consumer_id: str, queues: list[str], *, count: int = 1,
                timeout: float = 1.0) -> list[Delivery]:
        """Lease up to `count` due messages to `consumer_id`, waiting at most `timeout` for one.

        Only what is ready at once is taken in a batch: after waiting, take a single message. An idle
        consumer woken by a burst then takes its share and the other idle consumers the rest, in order."""

    @abstractmethod
    def ack(self, deliveries: list[Delivery]) -> None:
        """Remove messages for good; called only once their outcome is stored."""

    @abstractmethod
    def release(self, delivery: Delivery, *, delay: float = 0.0) -> None:
        """Give a message back unchanged (lock busy, shutdown), visible again after `delay`."""

    def release_many(self, deliveries: list[Delivery], *, delay: float = 0.0) -> None:
        """Give several back at once, keeping their order (the first given is taken first)."""
        for delivery in reversed(deliveries):
            self.release(delivery, delay=delay)

    @abstractmethod
    def heartbeat(self, consumer_ids: list[str]) -> None:
        """Extend the lease on everything these live consumers hold."""

    @abstractmethod
    def recover(self, stale_after: float, consumer_ids: list[str] | None = None, *, redelivered: bool = True) -> int:
        """Requeue messages of consumers silent for `stale_after` s (or of those named); return count.
        `redelivered=False`: a live consumer gives back what it held through an outage, which does
        not count towards TASKQUEUE_MAX_REDELIVERIES."""

    @abstractmethod
    def forget_consumer(self, consumer_id: str) -> None:
        """A consumer stopped cleanly: drop its lease record (it must hold no messages)."""

    @abstractmethod
    def cancel(self, task_id: str, ttl: float, *, terminate: str | None = None) -> None:
        """Never hand out messages of this task (key `task_id` or `task_id~attempt`) for `ttl` s;
        with `terminate` (a signal name), also stop it where it already runs (`terminations`)."""

    @abstractmethod
    def terminations(self, task_ids: list[str]) -> dict[str, str]:
        """Of these running tasks, those revoked with terminate, and the signal for each."""

    @abstractmethod
    def contains(self, key: str) -> bool:
        """Whether a message with this key is queued, delayed or in flight."""

    @abstractmethod
    def body(self, key: str) -> bytes | None:
        """The body of a message that is queued, delayed or in flight (None once acked)."""

    @abstractmethod
    def leases(self) -> Leases:
        """The consumers with their heartbeat age, what each holds, and what waits for its eta."""

    @abstractmethod
    def purge(self, queue: str) -> int:
        """Delete every ready message of `queue`; return how many."""

    @abstractmethod
    def sizes(self) -> dict[str, int]:
        """Ready message count per known queue."""

    @abstractmethod
    def close(self) -> None:
        """Drop connections (also after fork, so a child never shares its parent's sockets)."""
