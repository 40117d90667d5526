"""The broker contract: queues of opaque bytes with delays, per-consumer leases and lock_key mutexes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from ..sqlexec import Rider


class Outgoing(NamedTuple):
    """A message to publish."""

    queue: str
    key: str  # unique per message (a task id, or task id + attempt for retries)
    body: bytes
    eta: float | None = None  # epoch seconds: invisible until then
    priority: int = 0  # 0-9, higher first (see TASKQUEUE_PRIORITY_AGING)


@dataclass(frozen=True)
class Delivery:
    """A message handed to one consumer; it stays leased to it until ack or release."""

    key: str
    body: bytes
    queue: str
    consumer_id: str
    redeliveries: int = 0  # times it was taken back from a dead consumer
    revoked: bool = False  # its task was revoked: not to run; the consumer settles what follows it, then acks


class Leases(NamedTuple):
    requeued: int  # messages given back to their queues
    terminations: dict[str, str]  # running task id -> signal name, for tasks revoked with terminate


@dataclass(frozen=True)
class Holdings:
    sizes: dict[str, int]  # ready messages per known queue
    bodies: dict[str, bytes] = field(default_factory=dict)  # of the asked keys queued, delayed or in flight
    published: set[str] = field(default_factory=set)  # asked keys published with `remember` within its time
    # with inspect(holders=True), for `app.control.inspect()`:
    consumers: dict[str, float] = field(default_factory=dict)  # consumer id -> seconds since its lease renewal
    held: dict[str, list[str]] = field(default_factory=dict)  # consumer id -> keys of the messages it holds
    delayed: list[tuple[str, float]] = field(default_factory=list)  # keys waiting for their eta (epoch s)
    inflight: dict[str, int] = field(default_factory=dict)  # queue -> messages leased to consumers
    later: dict[str, int] = field(default_factory=dict)  # queue -> messages waiting for their eta
    oldest: dict[str, float] = field(default_factory=dict)  # queue -> when its head became ready (epoch s)
    # with inspect(queue=, offset=, limit=), for the admin's queues page:
    waiting: list[str] = field(default_factory=list)  # keys of that queue's ready messages, next first


class Broker(ABC):
    """Every broker implements these nine (`ack_rider`, `writes_before_ack`,
    `sends_with_next_reserve`, `pushing` and `running_long` are optional); results and notifications live elsewhere."""

    # Whether `inspect` finds messages by key (bodies, pages of waiting keys, what each consumer
    # holds); RabbitMQ cannot: operator pages then show counts only.
    reads_by_key = True
    # Whether a consumer's messages go back to their queue by themselves when its process dies
    # (RabbitMQ, on the connection's close), rather than when `leases` requeues them.
    takes_back_on_disconnect = False
    # The longest countdown the broker keeps, in seconds (what a revoke must outlast when it cannot
    # read the message's eta).
    longest_delay = float("inf")

    @abstractmethod
    def publish(self, messages: Sequence[Outgoing], *, remember: float | None = None) -> None:
        """Store the messages durably (a key already held is not stored twice). With `remember`,
        `inspect` knows their keys were published for that many seconds (the outbox asks)."""

    @abstractmethod
    def reserve(self, consumer_id: str, queues: list[str], *, count: int = 1,
                timeout: float = 1.0) -> list[Delivery]:
        """Lease up to `count` due messages to `consumer_id`, waiting at most `timeout` for one.

        Only what is ready at once is taken in a batch: after waiting, take a single message. An idle
        consumer woken by a burst then takes its share and the other idle consumers the rest, in order.
        A message of a cancelled task is handed out marked `revoked`, so the consumer fails what
        was to follow it (its chain's later steps, its chord) before acking it. A reserve that fails on a
        dropped connection may have leased messages whose reply was lost: the consumer then gives
        back what it holds and is not running (`leases(requeue=[itself])`) before reserving again.
        No `queues` (all paused) takes nothing: it waits out `timeout`."""

    @abstractmethod
    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Remove messages for good; called only once their outcome is stored."""

    def ack_rider(self, deliveries: Sequence[Delivery]) -> Rider | None:
        """The ack as a statement a worker can run in the transaction that stores the outcomes,
        where the broker's queues live in the results' database (the database broker on
        PostgreSQL); None elsewhere: the worker then calls `ack` once the outcomes are on disk."""
        return None

    def writes_before_ack(self) -> AbstractContextManager[None]:
        """Where a worker writes what must precede an ack (the outcomes, the messages that follow
        them): the database broker on SQLite, its queue in the results' file, lets those commit
        without a disk sync (`sqlexec.unsynced`: the ack comes after them in the same log);
        elsewhere nothing changes."""
        return nullcontext()

    def sends_with_next_reserve(self) -> AbstractContextManager[None]:
        """Where a worker sends what follows a task and then asks for more: publishes made on this
        thread inside the block may wait for its next reserve and travel in the same round trip
        (Redis: one script stores them, then leases), or go at the block's end. If that reserve
        or the block fails, whether they went is unknown: publish them again (a message still
        queued or held is not stored twice). Elsewhere nothing changes."""
        return nullcontext()

    def pushing(self, consumer_id: str) -> bool:
        """Whether it may now send this consumer messages ahead of its reserves (RabbitMQ, with a
        prefetch above one): its worker then says when a task runs long (`running_long`), so that
        none waits behind it. Elsewhere False: a consumer takes only what it asks for."""
        return False

    def running_long(self, consumer_id: str) -> None:
        """The consumer runs a long task: a broker `pushing` to it stops, and gives back what it
        sent that was not taken yet, for other consumers; its next reserve starts again."""
        return None

    @abstractmethod
    def release(self, deliveries: Sequence[Delivery], *, delay: float = 0.0) -> None:
        """Give messages back unchanged (lock busy, shutdown), visible again after `delay`, keeping
        their order (the first given is taken first)."""

    @abstractmethod
    def leases(self, alive: Sequence[str] = (), *, requeue: Sequence[str] = (), stale_after: float | None = None,
               redelivered: bool = True, running: Sequence[str] = ()) -> Leases:
        """Lease bookkeeping: renew the leases of the `alive` consumers; give back what the `requeue`
        consumers hold, and what consumers silent for `stale_after` seconds hold, and forget those
        consumers (each message counts a redelivery, towards TASKQUEUE_MAX_REDELIVERIES, unless
        `redelivered` is False: a live consumer returning what it held through an outage); say which
        of the `running` task ids were cancelled with terminate."""

    @abstractmethod
    def cancel(self, task_id: str, ttl: float, *, terminate: str | None = None) -> None:
        """Never hand out messages of this task (key `task_id` or `task_id~attempt`) for `ttl` s;
        with `terminate` (a signal name), also stop it where it already runs (see `leases`)."""

    @abstractmethod
    def lock(self, name: str, owner: str, stale_after: float | None) -> bool:
        """Take the lock_key mutex `name` for the consumer `owner`: False while another consumer
        holds it whose lease is younger than `stale_after` s. `stale_after=None` gives it back."""

    @abstractmethod
    def inspect(self, keys: Sequence[str] = (), *, holders: bool = False, queue: str | None = None,
                offset: int = 0, limit: int = 0) -> Holdings:
        """Queue sizes (ready messages), and what the broker has of these message keys; with
        `holders`, also the consumers' lease ages, what each holds, what waits for its eta, and per
        queue the messages in flight and delayed and when its head became ready; with `queue` and
        `limit`, the keys of up to `limit` of its ready messages from `offset`, in the order they
        would be taken. Reads only: an operator's page, never on the path of a message."""

    @abstractmethod
    def close(self) -> None:
        """Drop connections (also after fork, so a child never shares its parent's sockets)."""
