"""Redis Cluster broker: the Redis broker's keys and scripts, one hash slot per queue.

Each queue's keys sit under its own prefix `{<prefix>:<queue>}`: the braces make Redis hash only
that part, so every key of a queue (its messages, ready and delayed sets, wake list, the leases of
what consumers took from it, its cancel markers) lives in one slot on one master, and different
queues spread over the masters. The "home" prefix `{<prefix>}` holds the lock_key mutexes, the
heartbeats `lock` reads and the set of queue names, so `leases`, `cancel` and `inspect` can visit
every queue. Each call of a lua/ script stays inside one prefix, so it never touches two slots;
it is sent to the master that owns that slot (the slot map is asked again after a MOVED or a
broken connection). A queue's calls are RedisBroker's own, run by a RedisBroker per queue over a
connection shared per master.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException

from ..conf import get_settings
from ..exceptions import ImproperlyConfigured
from .base import Broker, Delivery, Holdings, Leases, Outgoing
from .keys import key
from .leases import needs_script
from .redis import ANNOUNCE_EVERY, RedisBroker, ThreadClients, connect

T = TypeVar("T")
WAIT_SLICE = 0.1  # seconds an idle consumer of several queues blocks on each queue's wake list in turn
# Replies that say the slot map this process has is out of date: the call did not run.
_MOVED = (redis.exceptions.AskError, redis.exceptions.TryAgainError, redis.exceptions.ClusterDownError)


class TopologyChanged(redis.ConnectionError):
    """A queue's slot is served elsewhere now (or its master is down): the call did not run, or its
    reply was lost; callers treat it as a broker outage and the next call uses the new slot map."""


def queue_prefix(prefix: str, queue: str) -> str:
    """The prefix of one queue's keys: all of them hash to one slot."""
    return f"{{{prefix}:{queue}}}"


def home_prefix(prefix: str) -> str:
    """The prefix of the keys that are no queue's: locks, the heartbeats they check, queue names."""
    return f"{{{prefix}}}"


def parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], str | None, str | None]:
    """`redis+cluster://[[user]:password@]host:port[,host:port…][/][?options]`: the startup nodes
    (any masters of the cluster: the others are discovered), and the user and password."""
    parts = urlsplit(url)
    nodes = []
    for address in parts.netloc.rpartition("@")[2].split(","):
        if not address:
            continue
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
        nodes.append((host or "127.0.0.1", int(port or 6379)))
    if not nodes:
        raise ValueError(f"{url!r} names no cluster node: redis+cluster://host:port[,host:port…]")
    return (nodes, unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None)


class ClusterNodes:
    """The cluster's slot map (redis-py's RedisCluster keeps it), and for each master a client with
    the Redis broker's options and one connection per thread (`ThreadClients`)."""

    def __init__(self, url: str, timeout: float | None = None, connect_timeout: float = 2):
        self.url, self.timeout, self.connect_timeout = url, timeout, connect_timeout
        nodes, self.username, self.password = parse_cluster_url(url)
        self._options: dict[str, Any] = dict(
            startup_nodes=[ClusterNode(host, port) for host, port in nodes], username=self.username,
            password=self.password, socket_connect_timeout=connect_timeout,
            socket_timeout=get_settings().BROKER_TIMEOUT if timeout is None else timeout)
        self._cluster: RedisCluster | None = None
        self._masters: dict[str, tuple[redis.Redis, ThreadClients]] = {}  # "host:port" -> its clients
        self._lock = threading.Lock()

    @property
    def cluster(self) -> RedisCluster:
        """redis-py's cluster client, which keeps the slot map; made on first use (it asks a node
        for the map at once), so an unreachable cluster fails a call as a broker outage does."""
        if self._cluster is None:
            with self._lock:
                if self._cluster is None:
                    try:
                        self._cluster = RedisCluster(**self._options)
                    except RedisClusterException as exc:
                        raise redis.ConnectionError(f"no Redis Cluster node answers: {exc}") from exc
        return self._cluster

    def master_of(self, some_key: str) -> tuple[str, redis.Redis, ThreadClients]:
        """The name of the master that owns `some_key`'s slot, and its clients."""
        node = self.cluster.get_node_from_key(some_key)
        return node.name, *self._clients(node)

    def masters(self) -> list[redis.Redis]:
        """A client of every master the slot map names."""
        return [self._clients(node)[0] for node in self.cluster.get_primaries()]

    def _clients(self, node: ClusterNode) -> tuple[redis.Redis, ThreadClients]:
        found = self._masters.get(node.name)
        if found is None:
            with self._lock:
                found = self._masters.get(node.name)
                if found is None:
                    user, password = quote(self.username or "", safe=""), quote(self.password or "", safe="")
                    auth = f"{user}:{password}@" if self.password else ""
                    client = connect(f"redis://{auth}{node.host}:{node.port}/0",
                                     self.timeout, self.connect_timeout)
                    found = self._masters[node.name] = (client, ThreadClients(client))
        return found

    def refresh(self) -> None:
        """Ask the cluster for its slot map again (after a MOVED or a master that went away)."""
        try:
            self.cluster.nodes_manager.initialize()
        except (redis.RedisError, RedisClusterException):
            pass  # the next call fails the same way and asks again

    def close_mine(self) -> None:
        for _client, threads in list(self._masters.values()):
            threads.close_mine()

    def close(self) -> None:
        for client, threads in list(self._masters.values()):
            threads.close_mine()
            client.close()
            client.connection_pool.disconnect()
        self._masters.clear()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


class RedisClusterBroker(Broker):
    """The Redis broker on a Redis Cluster: one RedisBroker per queue, on the master of its slot."""

    def __init__(self, url: str, prefix: str = "taskqueue", priority_aging: float = 60.0):
        if "{" in prefix or "}" in prefix:
            raise ImproperlyConfigured(f"TASKQUEUE_KEY_PREFIX {prefix!r}: no braces on a Redis Cluster "
                                       "(the broker puts its own around each queue's keys)")
        self.url, self.prefix, self.priority_aging = url, prefix, priority_aging
        self.nodes = ClusterNodes(url)
        self._queues: dict[str, tuple[str, RedisBroker]] = {}  # queue -> (its master, its broker)
        self._home: tuple[str, RedisBroker] | None = None
        self._announced: dict[str, float] = {}  # queue -> when this process last named it in the home set

    # -- where each queue's calls go

    def _partition(self, queue: str | None) -> RedisBroker:
        """The RedisBroker of a queue's keys (None: the home keys), on the master of their slot."""
        cached = self._home if queue is None else self._queues.get(queue)
        if cached is not None:
            return cached[1]
        prefix = home_prefix(self.prefix) if queue is None else queue_prefix(self.prefix, queue)
        name, client, threads = self.nodes.master_of(prefix)
        partition = RedisBroker(self.url, prefix, self.priority_aging, client=client, threads=threads)
        if queue is None:
            self._home = (name, partition)
        else:
            self._queues[queue] = (name, partition)
        return partition

    def _on(self, queue: str | None, method: Callable[..., T], /, *args: Any, retry: bool = True,
            **kwargs: Any) -> T:
        """`method(<the partition of queue>, *args, **kwargs)`. When the slot map was out of date,
        ask for it again and, with `retry`, call once more (Redis answered MOVED: the call did not
        run). A dropped connection is raised as RedisBroker raises it, the map refreshed first."""
        try:
            return method(self._partition(queue), *args, **kwargs)
        except _MOVED as exc:
            self._forget_topology()
            if not retry:
                raise TopologyChanged(str(exc)) from exc
        except redis.ResponseError as exc:
            if "non local key" not in str(exc):  # a script run where its slot no longer is
                raise
            self._forget_topology()
            if not retry:
                raise TopologyChanged(str(exc)) from exc
        except (redis.ConnectionError, redis.TimeoutError):
            self._forget_topology()
            raise
        try:
            return method(self._partition(queue), *args, **kwargs)
        except (*_MOVED, redis.ConnectionError, redis.TimeoutError) as exc:
            self._forget_topology()
            raise TopologyChanged(str(exc)) from exc

    def _forget_topology(self) -> None:
        self.nodes.refresh()
        self._queues.clear()
        self._home = None

    def _known_queues(self) -> list[str]:
        names = self._on(None, lambda home: home.client.smembers(key(home.prefix, "queues")))
        return sorted(name.decode() for name in names)

    def _announce(self, queues: Iterable[str]) -> None:
        """Name these queues in the home set now and then, so every process finds their keys
        (publishers and consumers both do: a queue someone holds messages of stays known)."""
        now = time.monotonic()
        due = [q for q in dict.fromkeys(queues) if now - self._announced.get(q, -ANNOUNCE_EVERY - 1) > ANNOUNCE_EVERY]
        if not due:
            return
        for queue in due:
            if not queue or "\n" in queue:
                raise ValueError(f"invalid queue name {queue!r}")
        self._on(None, lambda home: home.client.sadd(key(home.prefix, "queues"), *due))
        for queue in due:
            self._announced[queue] = now

    def _everywhere(self) -> list[str | None]:
        """The home partition (None) and every known queue."""
        return [None, *self._known_queues()]

    # -- the contract

    def publish(self, messages: Sequence[Outgoing], *, remember: float | None = None) -> None:
        by_queue = _grouped(messages, lambda message: message.queue)
        self._announce(by_queue)
        for queue, group in by_queue.items():
            self._on(queue, RedisBroker.publish, group, remember=remember)

    def reserve(self, consumer_id: str, queues: list[str], *, count: int = 1,
                timeout: float = 1.0) -> list[Delivery]:
        if not queues:
            time.sleep(max(0.0, timeout))
            return []
        self._announce(queues)
        if len(queues) == 1:  # one slot: RedisBroker's own wait on the wake list
            return self._on(queues[0], RedisBroker.reserve, consumer_id, queues, count=count, timeout=timeout,
                            retry=False)
        deliveries: list[Delivery] = []
        etas = []
        for queue in queues:  # in the order given, until `count` are taken
            taken, next_eta = self._on(queue, RedisBroker._take, consumer_id, [queue], count - len(deliveries),
                                       retry=False)
            deliveries += taken
            etas += [next_eta] if next_eta is not None else []
            if len(deliveries) >= count:
                break
        if deliveries or timeout <= 0:
            return deliveries
        return self._wait_in_turn(consumer_id, queues, timeout if not etas else
                                  max(0.0, min(timeout, min(etas) - time.time())))

    def _wait_in_turn(self, consumer_id: str, queues: list[str], wait: float) -> list[Delivery]:
        """No BLPOP waits on keys of two slots: block on each queue's wake list in turn, WAIT_SLICE
        at a time, and take one message from the first woken (see Broker.reserve)."""
        deadline = time.monotonic() + wait
        while True:  # bounded by `deadline`
            for queue in queues:
                block = max(0.001, min(deadline - time.monotonic(), WAIT_SLICE))
                deliveries = self._on(queue, RedisBroker.take_when_woken, consumer_id, [queue], block, retry=False)
                if deliveries or time.monotonic() >= deadline:
                    return deliveries

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        for queue, group in _grouped(deliveries, lambda delivery: delivery.queue).items():
            self._on(queue, RedisBroker.ack, group)

    def release(self, deliveries: Sequence[Delivery], *, delay: float = 0.0) -> None:
        for queue, group in _grouped(deliveries, lambda delivery: delivery.queue).items():
            self._on(queue, RedisBroker.release, group, delay=delay)

    def leases(self, alive: Sequence[str] = (), *, requeue: Sequence[str] = (), stale_after: float | None = None,
               redelivered: bool = True, running: Sequence[str] = ()) -> Leases:
        # Renewed in every partition: a consumer holds messages in some, and `lock` looks a lock's owner up at home.
        requeued = 0
        if needs_script(alive, requeue, stale_after):
            for queue in self._everywhere():
                requeued += self._on(queue, RedisBroker.leases, alive, requeue=requeue, stale_after=stale_after,
                                     redelivered=redelivered).requeued
        terminations = self._on(None, RedisBroker.leases, running=running).terminations if running else {}
        return Leases(requeued, terminations)

    def cancel(self, task_id: str, ttl: float, *, terminate: str | None = None) -> None:
        # In each known queue's slot, where reserve looks, and at home, where leases looks. A queue
        # first used after this call does not see it (docs/brokers.md).
        for queue in self._everywhere():
            self._on(queue, RedisBroker.cancel, task_id, ttl, terminate=terminate)

    def lock(self, name: str, owner: str, stale_after: float | None) -> bool:
        return self._on(None, RedisBroker.lock, name, owner, stale_after)

    def inspect(self, keys: Sequence[str] = (), *, holders: bool = False, queue: str | None = None,
                offset: int = 0, limit: int = 0) -> Holdings:
        merged = Holdings({})
        for name in self._known_queues():
            seen = self._on(name, RedisBroker.inspect, keys, holders=holders)
            merged = _merge(merged, replace(seen, sizes={name: seen.sizes.get(name, 0)}))
        if holders:  # the heartbeats at home: consumers that hold nothing yet
            merged = _merge(merged, self._on(None, RedisBroker._holders, Holdings({})))
        if queue is not None and limit > 0:
            page = self._on(queue, RedisBroker.inspect, queue=queue, offset=offset, limit=limit)
            merged = replace(merged, waiting=page.waiting)
        return merged

    def close(self) -> None:
        self.nodes.close()
        self._queues.clear()
        self._home = None


def _grouped[V](items: Iterable[V], queue_of: Callable[[V], str]) -> dict[str, list[V]]:
    """Items by queue, each group in the order given."""
    groups: dict[str, list[V]] = {}
    for item in items:
        groups.setdefault(queue_of(item), []).append(item)
    return groups


def _merge(one: Holdings, other: Holdings) -> Holdings:
    """Two partitions' Holdings as one: a consumer's age is its latest renewal anywhere."""
    consumers = dict(one.consumers)
    for consumer, age in other.consumers.items():
        consumers[consumer] = min(age, consumers.get(consumer, age))
    held = dict(one.held)
    for consumer, keys in other.held.items():
        held[consumer] = held.get(consumer, []) + keys
    return Holdings(
        sizes={**one.sizes, **other.sizes}, bodies={**one.bodies, **other.bodies},
        published=one.published | other.published, consumers=consumers,
        held=held,
        delayed=sorted(one.delayed + other.delayed, key=lambda pair: pair[1]),
        inflight=_summed(one.inflight, other.inflight), later=_summed(one.later, other.later),
        oldest={**one.oldest, **other.oldest}, waiting=one.waiting + other.waiting)


def _summed(one: dict[str, int], other: dict[str, int]) -> dict[str, int]:
    return {name: one.get(name, 0) + other.get(name, 0) for name in {**one, **other}}


def connect_cluster(url: str, timeout: float | None = None, connect_timeout: float = 2) -> ClusterNodes:
    """The slot map and per-master clients of a redis+cluster:// URL."""
    return ClusterNodes(url, timeout, connect_timeout)


__all__ = ["ClusterNodes", "RedisClusterBroker", "TopologyChanged", "connect_cluster", "home_prefix",
           "parse_cluster_url", "queue_prefix"]
